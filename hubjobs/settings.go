package hubjobs

import (
	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
)

// hubSettings returns what the REST API serves at restapi.SettingsPath: the
// jobs engine's pacing and in-flight limit, so remote runs report the hub's
// settings rather than their scenario's.
func hubSettings(p jobs.Profile, maxInFlight int) func() restapi.Settings {
	if maxInFlight <= 0 {
		maxInFlight = jobs.DefaultMaxInFlight
	}
	s := restapi.Settings{Pacing: p.Name, OpsPerSecond: p.OpsPerSecond, MaxInFlight: maxInFlight, MaxConcurrentJobs: p.MaxConcurrentJobs}
	if s.Pacing == "" {
		s.Pacing = "unlimited"
	}
	return func() restapi.Settings { return s }
}
