//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import "io"

// ttyWidth returns 0: the terminal's width is not read on this platform.
func ttyWidth(io.Writer) int { return 0 }
