//go:build linux || darwin || freebsd || netbsd || openbsd

package main

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// ttyWidth returns the width in columns of the terminal w is, or 0.
func ttyWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	var ws struct{ Row, Col, X, Y uint16 }
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TIOCGWINSZ), uintptr(unsafe.Pointer(&ws))); errno != 0 {
		return 0
	}
	return int(ws.Col)
}
