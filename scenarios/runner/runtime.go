package runner

// RuntimeSettings is how the process running the fleet was set up, and why:
// the memory model's estimate for the fleet and the settings chosen from it
// and the machine's memory. The command that runs the scenario fills it in.
type RuntimeSettings struct {
	// Devices is the fleet size the settings were chosen for (this shard's).
	Devices int `json:"devices"`
	// PerDeviceBytes and NeedBytes are the model's estimates: one device,
	// and the whole fleet with the process's base.
	PerDeviceBytes int64 `json:"perDeviceBytes"`
	NeedBytes      int64 `json:"needBytes"`
	// MemoryBytes is the machine's (or container's) memory, 0 when unknown.
	MemoryBytes int64 `json:"memoryBytes"`
	// MemoryLimitBytes is the GC's soft memory limit, 0 when none.
	MemoryLimitBytes int64 `json:"memoryLimitBytes"`
	// MaxDevices is the largest fleet like this one the machine holds by
	// the model, 0 when the memory is unknown.
	MaxDevices int `json:"maxDevices"`
	// StackShrinking says whether the GC shrinks idle goroutine stacks.
	StackShrinking bool `json:"stackShrinking"`
	// GCPercent is the GC target (GOGC) the run had, -1 when off.
	GCPercent int `json:"gcPercent"`
	// Procs is GOMAXPROCS during the run.
	Procs int `json:"procs"`
	// Reason says why, in one sentence.
	Reason string `json:"reason"`
}
