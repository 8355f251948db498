package restapi

import (
	"encoding/json"
	"net/http"
)

// SettingsPath is where a fleetsim hub serves its settings, under
// fleetsim's own prefix: no IoT hub serves it, so a client that gets 404
// (or a 400 from an older fleetsim) knows it talks to a hub whose settings
// it cannot read.
const SettingsPath = "/fleetsim/v1/settings"

// Settings are the hub's settings that decide how a scenario's jobs run,
// as GET /fleetsim/v1/settings answers them.
type Settings struct {
	// Pacing is the jobs pacing profile as written: unlimited, S1, S2x4, ...
	Pacing string `json:"pacing"`
	// OpsPerSecond is the pacing's device operations per second; 0 is unlimited.
	OpsPerSecond float64 `json:"opsPerSecond"`
	// MaxInFlight bounds the jobs' device operations in flight.
	MaxInFlight int `json:"maxInFlight"`
	// MaxConcurrentJobs bounds the jobs that are not terminal; 0 is none.
	MaxConcurrentJobs int `json:"maxConcurrentJobs"`
}

// getSettings answers GET /fleetsim/v1/settings: the Config's Settings,
// or 404 when the server has none.
func (s *Server) getSettings(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Settings == nil {
		s.notFound(w, r)
		return nil
	}
	b, err := json.Marshal(s.cfg.Settings())
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
