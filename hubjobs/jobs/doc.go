// Package jobs is the Jobs v2 domain and engine of fleetsim's hub
// (docs/iothub.md §5): job and device-job types, request validation, statuses and
// statistics, start-time scheduling, bounded and paced fan-out to devices,
// cancel, maximum execution times, persistence through a Store, and the
// devices.jobs rows that queries read.
//
// The engine declares what it needs from the rest of the hub as small
// interfaces (MethodInvoker, TwinPatcher, DeviceSelector, Store); the registry
// and hubjobs/jobstore satisfy them, and the wiring checks that they do.
//
// # Life of a job
//
// Create validates a JobRequest, persists the job and answers "queued" (start
// time now or past) or "scheduled" (start time in the future). One timer over
// a heap of start times starts jobs: at start the engine evaluates the
// queryCondition through the DeviceSelector, persists the device set together
// with the status "running", and hands each device to a fixed pool of workers
// (Config.MaxInFlight), paced by one token bucket shared by every job of the
// hub (the Profile, docs/iothub.md §7). Outcomes reach a single writer goroutine
// that commits them in batches (group commit): a batch's device results and
// the job's statistics go to the store in one transaction, and a device counts
// as done only once its result is durable. A job whose every device is done
// ends "completed".
//
// # Statistics
//
// deviceJobStatistics always satisfies
//
//	deviceCount = pendingCount + runningCount + succeededCount + failedCount
//
// at every read: the counters change under the job's lock together with the
// device records. A terminal job has no device pending or running: a job
// cancelled while calls are in flight stays running until the writer has
// recorded them, and an expiring job cuts its calls and waits for them
// before it ends. A device job that was canceled (the job was cancelled
// before the device was reached) counts under failedCount, since the swagger
// statistics have no cancelled counter. A method device job whose device
// answered, whatever its status (even 500), is "completed" and counts as
// succeeded: the hub completed the call and the device's status is in
// outcome.deviceMethodResponse, as the real hub reports it (docs/iothub.md §5.4,
// where fleetsim's choice is written down).
//
// # Lock order
//
// Locks are taken in this order and never the other way round:
//
//	Engine.storeMu   serialises every store write with the in-memory change it records
//	Engine.mu        the job table, the start-time heap and the active-job count
//	job.mu           one job's fields, device records and statistics
//	query.Index      (its own internal lock) the devices.jobs index
//	pacer.mu         the shared token bucket (taken alone)
//
// A function whose name ends in Locked expects the caller to hold the lock of
// the value it works on (job.mu for job methods, Engine.mu for Engine methods).
package jobs
