package main

import (
	"errors"
	"flag"
	"time"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// coordFlags are the flags of `fleetsim run` that say how the shards of a
// run against a remote hub meet there.
type coordFlags struct {
	runID            string
	barrierTimeout   time.Duration
	heartbeatTimeout time.Duration
	atEnd            string
}

func (c *coordFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.runID, "run-id", "", "`ID` every shard of one run shares, on the hub's twin fleetsim-run-ID and in the run's job ids (default $"+runner.EnvRunID+", else the scenario's name and seed with $"+runner.EnvRunUID+"); with --hub only")
	fs.DurationVar(&c.barrierTimeout, "barrier-timeout", 2*time.Minute, "with --hub, how long shard 1 waits for every shard to be ready before it starts the timeline without the missing ones")
	fs.DurationVar(&c.heartbeatTimeout, "heartbeat-timeout", 30*time.Second, "with --hub, how long a shard may go without a heartbeat before the others report it gone")
	fs.StringVar(&c.atEnd, "at-end", "leave", "with --hub, what shard 1 does with jobs still running when the run ends: `leave` them running (the report says so) or cancel them")
}

// resolve checks the flags and returns the runner's settings.
// They only matter with a remote hub: runs on an embedded hub do not meet.
func (c *coordFlags) resolve(getenv func(string) string) (runner.Coordination, error) {
	if c.barrierTimeout <= 0 || c.heartbeatTimeout <= 0 {
		return runner.Coordination{}, errors.New("--barrier-timeout and --heartbeat-timeout must be positive")
	}
	if c.atEnd != "leave" && c.atEnd != "cancel" {
		return runner.Coordination{}, errors.New("--at-end: want leave or cancel, got " + c.atEnd)
	}
	return runner.Coordination{
		RunID: c.runID, BarrierTimeout: c.barrierTimeout, HeartbeatTimeout: c.heartbeatTimeout,
		CancelAtEnd: c.atEnd == "cancel", Getenv: getenv,
	}, nil
}
