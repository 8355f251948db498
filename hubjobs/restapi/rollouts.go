package restapi

import (
	"context"
	"encoding/json"
	"net/http"
)

// RolloutsPath is where a fleetsim hub that runs rollouts itself serves
// them, under fleetsim's own prefix: IoT Hub has no rollouts.
const RolloutsPath = "/fleetsim/v1/rollouts"

// Rollouts runs rollouts on the hub. Its answers are JSON; its errors are
// *iothub.Error (ArgumentInvalid for a plan with problems, 404 for an
// unknown rollout, PreconditionFailed for an approval or abort the rollout
// cannot take), which the API writes as they are.
type Rollouts interface {
	// Submit parses a rollout plan (YAML or JSON; filename names it in the
	// problems' positions), starts it, and answers its first state.
	Submit(ctx context.Context, filename string, plan []byte) ([]byte, error)
	// List answers the rollouts' summaries.
	List() ([]byte, error)
	// Get answers a rollout's state.
	Get(id string) ([]byte, error)
	// Approve approves a stage ("" is the one the rollout waits on).
	Approve(id, stage string) ([]byte, error)
	// Abort asks the rollout's engine to abort it.
	Abort(id, reason string) ([]byte, error)
}

// rolloutRoutes registers the rollout endpoints: reading needs
// ServiceConnect or RegistryRead, changing needs ServiceConnect.
func (s *Server) rolloutRoutes() {
	read := RegistryRead | ServiceConnect
	s.routeAny("GET "+RolloutsPath, read, s.listRollouts)
	s.routeAny("GET "+RolloutsPath+"/{id}", read, s.getRollout)
	s.route("POST "+RolloutsPath, ServiceConnect, s.submitRollout)
	s.route("POST "+RolloutsPath+"/{id}/approve", ServiceConnect, s.approveRollout)
	s.route("POST "+RolloutsPath+"/{id}/abort", ServiceConnect, s.abortRollout)
}

// writeRaw answers 200 with a JSON document as it is.
func (s *Server) writeRaw(w http.ResponseWriter, b []byte) error {
	_, err := w.Write(b)
	return err
}

func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Rollouts == nil {
		s.notFound(w, r)
		return nil
	}
	b, err := s.cfg.Rollouts.List()
	if err != nil {
		return err
	}
	return s.writeRaw(w, b)
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Rollouts == nil {
		s.notFound(w, r)
		return nil
	}
	b, err := s.cfg.Rollouts.Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.writeRaw(w, b)
}

// submitRollout answers POST /fleetsim/v1/rollouts: the body is a plan
// file's text (YAML or JSON), the file query parameter its name for the
// problems' positions (default "plan").
func (s *Server) submitRollout(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Rollouts == nil {
		s.notFound(w, r)
		return nil
	}
	body, err := readBody(r, true)
	if err != nil {
		return err
	}
	b, err := s.cfg.Rollouts.Submit(r.Context(), r.URL.Query().Get("file"), body)
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return s.writeRaw(w, b)
}

// rolloutControl is the optional body of approve and abort.
type rolloutControl struct {
	Stage  string `json:"stage,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func (s *Server) readControl(r *http.Request) (rolloutControl, error) {
	var c rolloutControl
	body, err := readBody(r, false)
	if err != nil || len(body) == 0 {
		return c, err
	}
	return c, decodeJSON(body, &c, true, "rollout request")
}

func (s *Server) approveRollout(w http.ResponseWriter, r *http.Request) error {
	return s.controlRollout(w, r, func(id string, c rolloutControl) ([]byte, error) {
		return s.cfg.Rollouts.Approve(id, c.Stage)
	})
}

func (s *Server) abortRollout(w http.ResponseWriter, r *http.Request) error {
	return s.controlRollout(w, r, func(id string, c rolloutControl) ([]byte, error) {
		return s.cfg.Rollouts.Abort(id, c.Reason)
	})
}

// controlRollout reads an approve or abort request and answers with the
// rollout's state after do.
func (s *Server) controlRollout(w http.ResponseWriter, r *http.Request, do func(id string, c rolloutControl) ([]byte, error)) error {
	if s.cfg.Rollouts == nil {
		s.notFound(w, r)
		return nil
	}
	c, err := s.readControl(r)
	if err != nil {
		return err
	}
	b, err := do(r.PathValue("id"), c)
	if err != nil {
		return err
	}
	return s.writeRaw(w, b)
}

// SubmitRollout posts a rollout plan's text (YAML or JSON) to a fleetsim
// hub that runs rollouts itself and returns the rollout's first state;
// file names the plan in the problems of an ArgumentInvalid answer.
func (c *Client) SubmitRollout(ctx context.Context, file string, plan []byte) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodPost, RolloutsPath+"?file="+esc(file), plan, nil)
}

// Rollouts returns the summaries of the rollouts a fleetsim hub runs.
func (c *Client) Rollouts(ctx context.Context) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodGet, RolloutsPath, nil, nil)
}

// Rollout returns the state of a rollout a fleetsim hub runs.
func (c *Client) Rollout(ctx context.Context, id string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodGet, RolloutsPath+"/"+esc(id), nil, nil)
}

// ApproveRollout approves a stage ("" is the one the rollout waits on).
func (c *Client) ApproveRollout(ctx context.Context, id, stage string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodPost, RolloutsPath+"/"+esc(id)+"/approve", rolloutControl{Stage: stage}, nil)
}

// AbortRollout asks a hub-run rollout to abort, for reason.
func (c *Client) AbortRollout(ctx context.Context, id, reason string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodPost, RolloutsPath+"/"+esc(id)+"/abort", rolloutControl{Reason: reason}, nil)
}
