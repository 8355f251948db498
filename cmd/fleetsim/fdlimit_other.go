//go:build !unix

package main

import "github.com/rs/zerolog"

// raiseDescriptorLimit does nothing where there is no RLIMIT_NOFILE.
func raiseDescriptorLimit(zerolog.Logger, int) {}
