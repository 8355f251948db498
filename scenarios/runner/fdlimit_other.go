//go:build !unix

package runner

import "github.com/rs/zerolog"

// raiseDescriptorLimit does nothing where there is no RLIMIT_NOFILE.
func raiseDescriptorLimit(zerolog.Logger, int) {}
