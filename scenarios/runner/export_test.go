package runner

// TuneGC is tuneGC for the benchmarks, which build stacks and fleets
// themselves and must run under the GC settings a scenario run gets.
func TuneGC(devices int) (restore func()) { return tuneGC(devices) }
