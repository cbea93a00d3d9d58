//go:build !linux

package bench

import (
	"errors"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// memStatus needs /proc; elsewhere the memory scenario reports that it cannot measure.
func memStatus(int) (rss, peak uint64, err error) {
	return 0, 0, errors.New("RSS is read from /proc, which this system does not have")
}
