package chaos

import "syscall"

// sysProcAttr kills a replica when the harness dies, however it dies (even SIGKILL), so no worker
// outlives a chaos run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
