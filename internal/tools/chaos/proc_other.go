//go:build !linux

package chaos

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; the deferred cleanup kills replicas.
func sysProcAttr() *syscall.SysProcAttr { return nil }
