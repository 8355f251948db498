//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDataDir takes an exclusive lock on dir/fleetsim.lock (creating dir),
// so that two fleetsim processes never share a data directory: a second
// one gets an error naming the first one's process id. The lock ends with
// the process, or with unlock.
func lockDataDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	return lockFile(filepath.Join(dir, "fleetsim.lock"), func(holder string) error {
		return fmt.Errorf("data directory %s is in use: %s holds it; stop it or use another --data", dir, holder)
	})
}

// lockStateFile takes an exclusive lock on a rollout's state file (on
// state.lock beside it), so that two rollout engines never drive one
// rollout: a second one gets an error naming the first one's process id.
func lockStateFile(state string) (unlock func(), err error) {
	return lockFile(state+".lock", func(holder string) error {
		return fmt.Errorf("rollout state file %s is in use: %s runs this rollout; wait for it, stop it, or follow it with 'fleetsim rollout status'", state, holder)
	})
}

// lockFile takes an exclusive flock on path, writing the process id into
// it; when another process (or another open of the file) holds it, inUse
// makes the error from a description of the holder.
func lockFile(path string, inUse func(holder string) error) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another fleetsim"
			if pid := strings.TrimSpace(string(b[:n])); pid != "" {
				holder += " (process " + pid + ")"
			}
			return nil, inUse(holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
