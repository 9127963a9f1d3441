package progress

import (
	"os"
	"syscall"
	"unsafe"
)

// isTerminal asks the terminal driver for the file's attributes (TCGETS):
// only a terminal answers.
func isTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}
