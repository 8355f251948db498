// Package hubjobs is fleetsim's hub: its composition root builds the broker,
// the device registry and its store, the jobs engine and its store, and the
// service REST API, and runs them together. The parts live in the packages
// below it (jobs, query, registry, regstore, jobstore, restapi, console,
// events, c2d, metrics).
package hubjobs

import (
	"context"
	"net"

	"github.com/fleetsim/fleetsim/hubjobs/c2d"
	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
)

// The types a caller of the hub's in-process service names. They are the
// parts' own types; the aliases let a caller (the scenario runner) work with
// the hub without importing its parts.
type (
	// Job is a job's state and statistics (a JobResponse).
	Job = jobs.Job
	// JobRequest is a job as created (the body of PUT /jobs/v2/{id}).
	JobRequest = jobs.JobRequest
	// ExportImportDevice is one device of a bulk registry request.
	ExportImportDevice = registry.ExportImportDevice
	// Authentication is a device's authentication in a bulk request.
	Authentication = registry.Authentication
	// SymmetricKey is a device's pair of SAS keys.
	SymmetricKey = registry.SymmetricKey
	// X509Thumbprint is a self-signed device's pair of thumbprints.
	X509Thumbprint = registry.X509Thumbprint
	// BulkResult is the answer to a bulk registry request.
	BulkResult = registry.BulkResult
	// QueryPage is one page of a query's answer.
	QueryPage = query.Page
	// C2DMessage is a cloud-to-device message to queue for a device.
	C2DMessage = c2d.Message
)

// Job statuses and types a caller branches on.
const (
	JobScheduled = jobs.StatusScheduled
	JobCancelled = jobs.StatusCancelled
	JobCompleted = jobs.StatusCompleted
	JobRunning   = jobs.StatusRunning
	// DefaultMaxInFlight is the jobs engine's bound on device operations in flight when none is configured.
	DefaultMaxInFlight = jobs.DefaultMaxInFlight
	JobDeviceMethod    = jobs.TypeDeviceMethod
	JobUpdateTwin      = jobs.TypeUpdateTwin
	DeviceEnabled      = registry.StatusEnabled
	DeviceDisabled     = registry.StatusDisabled
	// AuthSelfSigned and AuthCA are the X.509 authentication types.
	AuthSelfSigned = registry.AuthenticationSelfSigned
	AuthCA         = registry.AuthenticationCA
)

// DialDevice opens an in-process connection to the broker, as a simulated
// device's transport.
func (s *Hub) DialDevice(ctx context.Context) (net.Conn, error) { return s.Broker.DialMemory(ctx) }

// SendC2D queues a cloud-to-device message for a device.
func (s *Hub) SendC2D(deviceID string, m C2DMessage) error {
	_, err := s.C2D.Send(deviceID, m)
	return err
}

// BulkUpdate applies a bulk registry request.
func (s *Hub) BulkUpdate(ctx context.Context, ops []ExportImportDevice) (BulkResult, error) {
	return s.Registry.BulkUpdate(ctx, ops)
}

// SetDeviceEnabled enables or disables a device; a disabled device is
// disconnected and refused.
func (s *Hub) SetDeviceEnabled(ctx context.Context, id string, on bool) error {
	d, err := s.Registry.GetDevice(id)
	if err != nil {
		return err
	}
	d.Status = registry.StatusDisabled
	if on {
		d.Status = registry.StatusEnabled
	}
	_, err = s.Registry.UpdateDevice(ctx, d, "*")
	return err
}

// Disconnect closes a device's connection at once, if it has one.
func (s *Hub) Disconnect(id string) { s.Broker.Disconnect(id) }

// CreateJob creates a job, as PUT /jobs/v2/{id} does.
func (s *Hub) CreateJob(ctx context.Context, req JobRequest) (Job, error) {
	return s.Jobs.Create(ctx, req)
}

// CancelJob cancels a job, as POST /jobs/v2/{id}/cancel does.
func (s *Hub) CancelJob(ctx context.Context, id string) (Job, error) { return s.Jobs.Cancel(ctx, id) }

// Job returns a job's state and statistics.
func (s *Hub) Job(id string) (Job, error) { return s.Jobs.Get(id) }

// DeviceJobRows calls fn with each devices.jobs row of a job (the documents
// SELECT * FROM devices.jobs returns) until fn returns false.
func (s *Hub) DeviceJobRows(jobID string, fn func(row map[string]any) bool) {
	s.Jobs.Rows(jobID, fn)
}

// Query runs an IoT Hub query (SELECT ... FROM devices, devices.modules or
// devices.jobs) as POST /devices/query does: a syntax error is IoT Hub's
// 400, and a page holds at most pageSize items.
func (s *Hub) Query(text string, pageSize int, continuation string) (QueryPage, error) {
	q, err := query.Parse(text)
	if err != nil {
		return QueryPage{}, err
	}
	if q.From() == query.Jobs {
		return s.Jobs.Query(q, pageSize, continuation)
	}
	return s.Registry.Query(q, pageSize, continuation)
}
