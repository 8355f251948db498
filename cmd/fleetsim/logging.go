package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// newLogger builds the structured logger: zerolog's console writer when w is
// a terminal, JSON lines otherwise, at the given level.
func newLogger(w io.Writer, tty bool, level string) (zerolog.Logger, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	if tty {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// parseLevel accepts zerolog's level names plus "off" and "none".
func parseLevel(s string) (zerolog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "off", "none", "disabled":
		return zerolog.Disabled, nil
	case "warning":
		return zerolog.WarnLevel, nil
	}
	lvl, err := zerolog.ParseLevel(strings.ToLower(strings.TrimSpace(s)))
	if err != nil || s == "" {
		return zerolog.NoLevel, fmt.Errorf("log level %q: want debug, info, warn, error or disabled", s)
	}
	return lvl, nil
}

// logger makes the command's logger from its --log-level, on stderr.
func (a *app) logger(f *flagSet) (zerolog.Logger, error) {
	l, err := newLogger(a.stderr, a.stderrTTY, f.level)
	if err != nil {
		return l, &usageError{cmd: f.name, msg: err.Error()}
	}
	return l, nil
}
