package console

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Devices is what the console needs from the device registry. Errors are
// *iothub.Error where the registry has one (DeviceNotFound,
// PreconditionFailed, DeviceNotOnline, ...).
type Devices interface {
	// Scan calls fn with each twin document in ascending id order, after
	// the id after ("" for the first), until fn returns false.
	Scan(after string, fn func(id string, doc map[string]any) bool)
	// SelectDeviceIDs returns the ids, ascending, whose twins match q.
	SelectDeviceIDs(ctx context.Context, q *query.Query) ([]string, error)
	// TwinJSON returns a device's twin as the service API shows it.
	TwinJSON(id string) ([]byte, error)
	// PatchTwinJSON applies a twin patch ({tags, properties: {desired}})
	// under ifMatch ("*" or an etag) and returns the new twin.
	PatchTwinJSON(ctx context.Context, id string, patch []byte, ifMatch string) ([]byte, error)
	// InvokeMethod calls a direct method and returns the device's answer.
	InvokeMethod(ctx context.Context, id string, req iothub.MethodRequest) (iothub.MethodResult, error)
}

// C2D is what the console needs to send cloud-to-device messages. Its
// errors are *iothub.Error (DeviceNotFound, MessageTooLarge,
// ArgumentInvalid, DeviceMaximumQueueDepthExceeded).
type C2D interface {
	// SendC2D queues a message for a device and returns its id and how
	// many messages wait for the device now.
	SendC2D(id string, m C2DMessage) (messageID string, queued int, err error)
}

// C2DMessage is a cloud-to-device message as the console's form sends it.
type C2DMessage struct {
	Data          string            `json:"data"`
	MessageID     string            `json:"messageId"`
	CorrelationID string            `json:"correlationId"`
	Properties    map[string]string `json:"properties"`
	TTLSeconds    int64             `json:"ttlSeconds"`
}

// Jobs is what the console needs from the Jobs v2 engine.
type Jobs interface {
	Create(ctx context.Context, req jobs.JobRequest) (jobs.Job, error)
	Get(id string) (jobs.Job, error)
	Cancel(ctx context.Context, id string) (jobs.Job, error)
	List(jobType, status string, pageSize int, continuation string) ([]jobs.Job, string, error)
	// Query answers a query of the devices.jobs collection.
	Query(q *query.Query, pageSize int, continuation string) (query.Page, error)
	// Rows calls fn with each device-job row of a job until fn returns false.
	Rows(jobID string, fn func(doc map[string]any) bool)
}

// Totals are the hub's counters since start, the ones /metrics exports.
type Totals struct {
	Devices     int     `json:"devices"`
	Connected   int     `json:"connected"`
	MessagesIn  int64   `json:"messagesIn"`
	MessagesOut int64   `json:"messagesOut"`
	MethodCalls float64 `json:"methodCalls"`
	JobOps      float64 `json:"jobOps"`
}

// Counters gives the hub's counters.
type Counters interface {
	Totals() Totals
}

// Policy is a shared access policy as the console checks a login: its keys
// and what it may do.
type Policy struct {
	Name string
	Keys [][]byte
	// Read allows the console's pages; Write allows its changes (twins,
	// methods, jobs), which need ServiceConnect on the REST API.
	Read, Write bool
}

// Config configures a Console.
type Config struct {
	// Hostname is the hub's host name, which login connection strings name.
	Hostname string
	Policies []Policy
	Devices  Devices
	Jobs     Jobs
	Counters Counters
	// Rollouts, when set, is the hub's rollout host, which the Rollouts
	// pages show and drive.
	Rollouts Rollouts
	// Events, when set, feeds the device page's recent events.
	Events DeviceEvents
	// C2D sends cloud-to-device messages from the device page; nil hides the form.
	C2D    C2D
	Logger zerolog.Logger
	// Rate is how often live updates are sent (default 3 per second).
	Rate time.Duration
	// SessionTTL is how long a session lasts (default 12 h).
	SessionTTL time.Duration
}

// Console serves the web console. Create it with New; Run owns its live
// updates and the event streams.
type Console struct {
	cfg    Config
	log    zerolog.Logger
	assets fs.FS
	mux    *http.ServeMux

	auth *auth
	live *live

	runMu   sync.Mutex
	stopped chan struct{} // closed when Run ends: event streams return
	streams sync.WaitGroup
}

//go:embed assets
var embedded embed.FS

// New checks cfg and builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.Devices == nil || cfg.Jobs == nil || cfg.Counters == nil {
		return nil, errors.New("console: Devices, Jobs and Counters are required")
	}
	if len(cfg.Policies) == 0 {
		return nil, errors.New("console: at least one shared access policy is required")
	}
	if cfg.Rate <= 0 {
		cfg.Rate = time.Second / 3
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, log: cfg.Logger, assets: sub, mux: http.NewServeMux(), stopped: make(chan struct{})}
	c.auth = newAuth(cfg.Hostname, cfg.Policies, cfg.SessionTTL)
	c.live = newLive(cfg.Devices, cfg.Jobs, cfg.Counters)
	c.routes()
	return c, nil
}

// Handler serves "/" and everything under "/console/".
func (c *Console) Handler() http.Handler { return c }

// LoginURLPath mints a one-time login token and returns the path that uses
// it, "/console/login?token=...": the first request to it starts a session.
// Unused tokens expire after a day.
func (c *Console) LoginURLPath() string {
	return "/console/login?token=" + c.auth.mintToken()
}

// Run samples the hub for live updates while anyone watches, until ctx
// ends; then it ends every event stream and waits for their handlers.
func (c *Console) Run(ctx context.Context) error {
	tick := time.NewTicker(c.cfg.Rate)
	defer tick.Stop()
	defer func() {
		close(c.stopped)
		c.streams.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			c.live.tick(ctx, time.Now())
			c.auth.sweep(time.Now())
		}
	}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
