package rollout

import "time"

// SetWaveLength shortens the waves of paced stages for a test; the returned
// function restores it.
func SetWaveLength(d time.Duration) func() {
	old := waveLength
	waveLength = d
	return func() { waveLength = old }
}
