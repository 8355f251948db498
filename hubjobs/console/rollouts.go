package console

import (
	"encoding/json"
	"net/http"
)

// Rollouts is what the console needs from the hub's rollout host: JSON
// answers, *iothub.Error for an unknown rollout or a request it cannot
// take. The methods are among the REST API's (restapi.Rollouts), so one
// host serves both.
type Rollouts interface {
	// List answers the rollouts' summaries.
	List() ([]byte, error)
	// Get answers a rollout's state.
	Get(id string) ([]byte, error)
	// Approve approves a stage ("" is the one the rollout waits on).
	Approve(id, stage string) ([]byte, error)
	// Abort asks the rollout's engine to abort it.
	Abort(id, reason string) ([]byte, error)
}

func (c *Console) rolloutRoutes() {
	c.api("GET /console/api/rollouts", false, c.apiRollouts)
	c.api("GET /console/api/rollouts/{id}", false, c.apiRollout)
	c.api("POST /console/api/rollouts/{id}/approve", true, c.apiApproveRollout)
	c.api("POST /console/api/rollouts/{id}/abort", true, c.apiAbortRollout)
}

// errNoRollouts answers when the hub runs no rollouts (fleetsim run's console).
var errNoRollouts = errorf(http.StatusNotFound, "this hub does not run rollouts")

func (c *Console) apiRollouts(w http.ResponseWriter, r *http.Request, s *session) error {
	if c.cfg.Rollouts == nil {
		return errNoRollouts
	}
	b, err := c.cfg.Rollouts.List()
	if err != nil {
		return err
	}
	rawJSON(w, b)
	return nil
}

func (c *Console) apiRollout(w http.ResponseWriter, r *http.Request, s *session) error {
	if c.cfg.Rollouts == nil {
		return errNoRollouts
	}
	b, err := c.cfg.Rollouts.Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	rawJSON(w, b)
	return nil
}

// rolloutRequest is the body of approve and abort.
type rolloutRequest struct {
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
}

func readRolloutRequest(r *http.Request) (rolloutRequest, error) {
	var q rolloutRequest
	if r.ContentLength == 0 {
		return q, nil
	}
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
		return q, errorf(http.StatusBadRequest, "malformed request: %v", err)
	}
	return q, nil
}

func (c *Console) apiApproveRollout(w http.ResponseWriter, r *http.Request, s *session) error {
	if c.cfg.Rollouts == nil {
		return errNoRollouts
	}
	q, err := readRolloutRequest(r)
	if err != nil {
		return err
	}
	b, err := c.cfg.Rollouts.Approve(r.PathValue("id"), q.Stage)
	if err != nil {
		return err
	}
	c.log.Info().Str("policy", s.policy).Str("rollout", r.PathValue("id")).Msg("console: rollout stage approved")
	rawJSON(w, b)
	return nil
}

func (c *Console) apiAbortRollout(w http.ResponseWriter, r *http.Request, s *session) error {
	if c.cfg.Rollouts == nil {
		return errNoRollouts
	}
	q, err := readRolloutRequest(r)
	if err != nil {
		return err
	}
	b, err := c.cfg.Rollouts.Abort(r.PathValue("id"), q.Reason)
	if err != nil {
		return err
	}
	c.log.Info().Str("policy", s.policy).Str("rollout", r.PathValue("id")).Str("reason", q.Reason).Msg("console: rollout abort requested")
	rawJSON(w, b)
	return nil
}
