//go:build !race

package broker

// raceEnabled says the test binary runs with the race detector, whose
// instrumentation makes every stack frame larger.
const raceEnabled = false
