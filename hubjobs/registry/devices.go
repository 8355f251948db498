package registry

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// recordFormat is the version of the persisted record encoding.
const recordFormat = 1

type recordEnvelope struct {
	Format int `json:"f"`
	*record
}

func encodeRecord(rec *record) ([]byte, error) {
	return appendRecord(make([]byte, 0, 1024), rec)
}

func decodeRecord(data []byte) (*record, error) {
	env := recordEnvelope{record: &record{}}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if env.Format != recordFormat {
		return nil, fmt.Errorf("record format %d is not supported (want %d)", env.Format, recordFormat)
	}
	rec := env.record
	if rec.ID == "" {
		return nil, fmt.Errorf("record without an id")
	}
	if rec.Desired == nil {
		rec.Desired = map[string]any{}
	}
	if rec.Reported == nil {
		rec.Reported = map[string]any{}
	}
	if rec.DesiredMeta == nil {
		rec.DesiredMeta = &meta{}
	}
	if rec.ReportedMeta == nil {
		rec.ReportedMeta = &meta{}
	}
	return rec, nil
}

// newKey is a device key: 32 random bytes (docs/iothub.md §4.3).
func newKey() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

// decodeKey reads a base64 symmetric key; empty means "generate".
func decodeKey(which, k string) ([]byte, error) {
	if k == "" {
		return newKey(), nil
	}
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(b) < 16 || len(b) > 64 {
		return nil, argInvalid("%s key must be base64 of 16 to 64 bytes", which)
	}
	return b, nil
}

// decodeKeys decodes a pair of SAS keys. A missing key is a new random one
// when fresh (a creation), else nil (an update keeps the key it had).
func decodeKeys(k SymmetricKey, fresh bool) (p, s []byte, err error) {
	decode := func(which, v string) ([]byte, error) {
		if v == "" && !fresh {
			return nil, nil
		}
		return decodeKey(which, v)
	}
	if p, err = decode("primary", k.PrimaryKey); err != nil {
		return nil, nil, err
	}
	if s, err = decode("secondary", k.SecondaryKey); err != nil {
		return nil, nil, err
	}
	return p, s, nil
}

func parseStatus(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", StatusEnabled:
		return StatusEnabled, nil
	case StatusDisabled:
		return StatusDisabled, nil
	}
	return "", argInvalid("status must be enabled or disabled, not %q", s)
}

func checkStatusReason(r *string) error {
	if r != nil && len(*r) > 128 {
		return argInvalid("statusReason is longer than 128 characters")
	}
	return nil
}

// newRecord builds the record of a device being created: a fresh twin with
// version 2 and desired/reported $version 1 (docs/iothub.md §3.1).
func (r *Registry) newRecord(d Device) (*record, error) {
	if err := iothub.ValidDeviceID(d.DeviceID); err != nil {
		return nil, argInvalid("%v", err)
	}
	status, err := parseStatus(d.Status)
	if err != nil {
		return nil, err
	}
	auth, err := parseAuth(d.Authentication)
	if err != nil {
		return nil, err
	}
	if err := checkStatusReason(d.StatusReason); err != nil {
		return nil, err
	}
	p, s, err := decodeKeys(d.Authentication.SymmetricKey, true)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rec := &record{
		ID:              d.DeviceID,
		Generation:      strconv.FormatInt(r.gens.Add(1), 10),
		Etag:            r.etags.Add(1),
		Status:          status,
		StatusReason:    d.StatusReason,
		Primary:         p,
		Secondary:       s,
		IotEdge:         d.Capabilities.IotEdge,
		TwinVersion:     2,
		TwinEtag:        1,
		Desired:         map[string]any{},
		Reported:        map[string]any{},
		DesiredVersion:  1,
		ReportedVersion: 1,
		DesiredMeta:     &meta{Updated: now},
		ReportedMeta:    &meta{Updated: now},
	}
	setAuth(rec, auth)
	return rec, nil
}

// CreateDevice registers a device: PUT /devices/{id} without If-Match
// (docs/iothub.md §4.3). Empty keys are generated (32 random bytes). Errors:
// ArgumentInvalid (id, status, keys, authentication type), DeviceAlreadyExists,
// ThrottlingException, ServerError (the store failed), ServiceUnavailable.
func (r *Registry) CreateDevice(ctx context.Context, d Device) (Device, error) {
	if err := checkCtx(ctx); err != nil {
		return Device{}, err
	}
	rec, err := r.newRecord(d)
	if err != nil {
		return Device{}, err
	}
	e := &entry{online: make(chan struct{})}
	r.mu.Lock()
	if _, ok := r.devices[rec.ID]; ok {
		r.mu.Unlock()
		return Device{}, iothub.Errorf(iothub.CodeDeviceAlreadyExists, "A device with ID '%s' is already registered.", rec.ID)
	}
	err = r.createLocked(rec.ID, e, rec, creation{
		add:  func() { r.devices[rec.ID] = e },
		show: func() { r.showLocked(e, rec) },
		remove: func() {
			if r.devices[rec.ID] == e {
				delete(r.devices, rec.ID)
			}
		},
	})
	if err != nil {
		return Device{}, err
	}
	return renderDevice(rec, live{}), nil
}

// creation is how createLocked adds a new device's or module's entry to its
// map (add), makes it visible (show) and takes it back after a failed write
// (remove); each runs under Registry.mu.
type creation struct{ add, show, remove func() }

// createLocked registers the new entry e with its first record rec under
// key (a device id, or "deviceId/moduleId") and returns once rec is
// durable: at once without a store. Until then the entry only reserves the
// key: readers do not see it, and a failed write removes it. The caller has
// checked that key is free and holds Registry.mu, which createLocked
// releases.
func (r *Registry) createLocked(key string, e *entry, rec *record, c creation) error {
	if r.com == nil {
		select {
		case <-r.closing:
			r.mu.Unlock()
			return unavailable()
		default:
		}
		c.add()
		c.show()
		r.mu.Unlock()
		return nil
	}
	wait := newDurable()
	err := r.queue(key, rec, func(err error) {
		r.mu.Lock()
		e.mu.Lock()
		if err == nil {
			c.show()
		} else {
			e.gone = true
			c.remove()
		}
		if e.next == rec {
			e.next = nil
		}
		e.mu.Unlock()
		r.mu.Unlock()
		wait.done(err)
	})
	if err != nil {
		r.mu.Unlock()
		return err
	}
	e.next = rec
	c.add()
	r.mu.Unlock()
	return wait.wait(key)
}

// showLocked makes a created device visible with rec: the id list, the
// query index and the counters. The caller holds Registry.mu (and e.mu if
// others may see e).
func (r *Registry) showLocked(e *entry, rec *record) {
	e.rec = rec
	r.ids.add(rec.ID)
	r.index.Update(rec.ID, nil, indexDoc(rec))
	r.total.Add(1)
	if rec.Status == StatusEnabled {
		r.enabled.Add(1)
	}
}

// UpdateDevice updates a device identity: PUT /devices/{id} with If-Match
// ("*", "\"*\"" or the device etag, quoted or not). Status, statusReason,
// non-empty keys and capabilities are taken from d. Disabling a device
// disconnects it. Errors: DeviceNotFound, PreconditionFailed, ArgumentInvalid,
// ThrottlingException, ServerError, ServiceUnavailable.
func (r *Registry) UpdateDevice(ctx context.Context, d Device, ifMatch string) (Device, error) {
	if err := checkCtx(ctx); err != nil {
		return Device{}, err
	}
	status, err := parseStatus(d.Status)
	if err != nil {
		return Device{}, err
	}
	auth, err := parseAuth(d.Authentication)
	if err != nil {
		return Device{}, err
	}
	if err := checkStatusReason(d.StatusReason); err != nil {
		return Device{}, err
	}
	p, s, err := decodeKeys(d.Authentication.SymmetricKey, false)
	if err != nil {
		return Device{}, err
	}
	if err := deviceOnly(d.DeviceID); err != nil {
		return Device{}, err
	}
	rec, lv, err := r.updateIdentity(d.DeviceID, ifMatch, "device", p, s, func(rec *record) {
		if rec.Status != status {
			rec.Status, rec.StatusUpdated = status, time.Now()
		}
		rec.StatusReason = d.StatusReason
		rec.IotEdge = d.Capabilities.IotEdge
		setAuth(rec, auth)
	})
	if err != nil {
		return Device{}, err
	}
	// docs/iothub.md §4.3: a disabled device cannot use device endpoints.
	if rec.Status == StatusDisabled {
		if l := r.linked(); l != nil {
			l.Disconnect(rec.ID)
		}
	}
	return renderDevice(rec, lv), nil
}

// updateIdentity changes the identity record of a device or module (key)
// when ifMatch matches its etag: a new etag, the SAS keys that are given
// (nil keeps a key), then change. It returns the record and the identity's
// connection state once the change is durable. what names the identity in
// the PreconditionFailed message.
func (r *Registry) updateIdentity(key, ifMatch, what string, p, s []byte, change func(*record)) (*record, live, error) {
	e, err := r.lockWritable(key)
	if err != nil {
		return nil, live{}, err
	}
	old := e.latest()
	if !etagMatches(ifMatch, deviceEtag(old.Etag)) {
		e.mu.Unlock()
		return nil, live{}, iothub.Errorf(iothub.CodePreconditionFailed, "Precondition failed: the %s etag does not match If-Match.", what)
	}
	rec := *old
	rec.Etag = r.etags.Add(1)
	change(&rec)
	if p != nil {
		rec.Primary = p
	}
	if s != nil {
		rec.Secondary = s
	}
	wait := newDurable()
	if err := r.commitLocked(e, &rec, false, wait.done); err != nil {
		e.mu.Unlock()
		return nil, live{}, err
	}
	lv := e.live
	e.mu.Unlock()
	if err := wait.wait(key); err != nil {
		return nil, live{}, err
	}
	return &rec, lv, nil
}

// GetDevice returns a device identity, or DeviceNotFound.
func (r *Registry) GetDevice(id string) (Device, error) {
	if err := deviceOnly(id); err != nil {
		return Device{}, err
	}
	e, err := r.lockEntry(id)
	if err != nil {
		return Device{}, err
	}
	rec, lv := e.rec, e.live
	e.mu.Unlock()
	return renderDevice(rec, lv), nil
}

// DeleteDevice removes a device (DELETE /devices/{id}, If-Match "*" or the
// device etag) and disconnects it. Errors: DeviceNotFound,
// PreconditionFailed, ThrottlingException, ServerError, ServiceUnavailable.
func (r *Registry) DeleteDevice(ctx context.Context, id, ifMatch string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if err := deviceOnly(id); err != nil {
		return err
	}
	r.mu.Lock()
	e := r.devices[id]
	if e == nil {
		r.mu.Unlock()
		return notFound(id)
	}
	e.mu.Lock()
	if e.gone || e.deleting {
		e.mu.Unlock()
		r.mu.Unlock()
		return notFound(id)
	}
	if !etagMatches(ifMatch, deviceEtag(e.latest().Etag)) {
		e.mu.Unlock()
		r.mu.Unlock()
		return iothub.Errorf(iothub.CodePreconditionFailed, "Precondition failed: the device etag does not match If-Match.")
	}
	if r.com == nil {
		select {
		case <-r.closing:
			e.mu.Unlock()
			r.mu.Unlock()
			return unavailable()
		default:
		}
		r.hideLocked(e, id)
		gone := r.dropModulesLocked(id)
		e.mu.Unlock()
		r.mu.Unlock()
		r.disconnectAll(gone)
	} else {
		// Its modules go first, then the device, each visible until its
		// deletion is durable.
		modWaits, err := r.deleteModulesLocked(id)
		if err != nil {
			e.mu.Unlock()
			r.mu.Unlock()
			return err
		}
		// The device stays visible until its deletion is durable.
		wait, err := r.queueDeletionLocked(e, id, r.hideLocked)
		if err != nil {
			e.mu.Unlock()
			r.mu.Unlock()
			return err
		}
		e.mu.Unlock()
		r.mu.Unlock()
		if err := r.waitModules(modWaits); err != nil {
			return err
		}
		if err := wait.wait(id); err != nil {
			return err
		}
	}
	if l := r.linked(); l != nil {
		l.Disconnect(id)
	}
	return nil
}

// queueDeletionLocked queues the deletion of a device or module (key),
// which stays visible until the deletion is durable; then hide removes it
// or, when the write failed, it is no longer being deleted. The caller holds
// Registry.mu and e.mu.
func (r *Registry) queueDeletionLocked(e *entry, key string, hide func(*entry, string)) (durable, error) {
	wait := newDurable()
	err := r.queue(key, nil, func(err error) {
		r.mu.Lock()
		e.mu.Lock()
		if err == nil {
			hide(e, key)
		} else {
			e.deleting = false
		}
		e.mu.Unlock()
		r.mu.Unlock()
		wait.done(err)
	})
	if err != nil {
		return nil, err
	}
	e.deleting = true
	return wait, nil
}

// hideLocked removes a deleted device from the registry, the id list, the
// query index and the counters, and wakes its waiters. The caller holds
// Registry.mu and e.mu.
func (r *Registry) hideLocked(e *entry, id string) {
	e.gone = true
	if e.live.connected {
		r.connected.Add(-1)
	}
	if e.rec != nil {
		if e.rec.Status == StatusEnabled {
			r.enabled.Add(-1)
		}
		r.total.Add(-1)
	}
	e.wakeLocked()
	if r.devices[id] == e {
		delete(r.devices, id)
		r.ids.remove()
		r.index.Remove(id, nil)
	}
}

// ListDevices returns up to max device identities (1000 when max <= 0) in id order.
func (r *Registry) ListDevices(max int) []Device {
	if max <= 0 {
		max = defaultListMaxItems
	}
	out := []Device{}
	for _, id := range r.sortedIDs() {
		if len(out) == max {
			break
		}
		if d, err := r.GetDevice(id); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// Statistics counts registered devices by status (GET /statistics/devices).
func (r *Registry) Statistics() Statistics {
	total, enabled := int(r.total.Load()), int(r.enabled.Load())
	return Statistics{TotalDeviceCount: total, EnabledDeviceCount: enabled, DisabledDeviceCount: total - enabled}
}

// ConnectedCount counts devices with a live connection (GET /statistics/service).
func (r *Registry) ConnectedCount() int { return int(r.connected.Load()) }

// TelemetryCount is the number of telemetry messages devices have sent.
func (r *Registry) TelemetryCount() int64 { return r.telemetry.Load() }

// Credentials returns a device's raw keys and whether it is enabled, or an
// error matching ErrDeviceNotFound. It does no I/O: the broker calls it on
// the connecting device's goroutine. The slices must not be modified.
func (r *Registry) Credentials(deviceID string) (primary, secondary []byte, enabled bool, err error) {
	if err := deviceOnly(deviceID); err != nil {
		return nil, nil, false, err
	}
	e, err := r.lockEntry(deviceID)
	if err != nil {
		return nil, nil, false, err
	}
	rec := e.rec
	e.mu.Unlock()
	return rec.Primary, rec.Secondary, rec.Status == StatusEnabled, nil
}

// BulkUpdate applies a bulk registry request, POST /devices (docs/iothub.md §4.3).
// importMode is matched case-insensitively: create, update,
// updateIfMatchETag, delete, deleteIfMatchETag, updateTwin,
// updateTwinIfMatchETag; tags and properties.desired of create and update
// entries are applied to the twin. As on IoT Hub, update of a device that
// does not exist is that entry's DeviceNotFound and creates nothing. Entries run concurrently, so they share
// store commits. The error is for a request that cannot run at all (an id
// defined twice: DeviceDefinedMultipleTimes); per-entry failures are in
// the result.
func (r *Registry) BulkUpdate(ctx context.Context, ops []ExportImportDevice) (BulkResult, error) {
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		if seen[op.ID] {
			return BulkResult{}, iothub.Errorf(iothub.CodeDeviceDefinedMultipleTimes, "Device %s is defined more than once in the request.", op.ID)
		}
		seen[op.ID] = true
	}
	errs := make([]error, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		wg.Go(func() { errs[i] = r.bulkOne(ctx, op) })
	}
	wg.Wait()
	res := BulkResult{IsSuccessful: true, Errors: []BulkError{}, Warnings: []BulkWarning{}}
	for i, err := range errs {
		if err != nil {
			e := iothub.AsError(err)
			res.IsSuccessful = false
			res.Errors = append(res.Errors, BulkError{DeviceID: ops[i].ID, ErrorCode: e.Code.Name, ErrorStatus: e.Message, Operation: ops[i].ImportMode})
		}
	}
	return res, nil
}

func (r *Registry) bulkOne(ctx context.Context, op ExportImportDevice) error {
	d := Device{DeviceID: op.ID, Status: op.Status, StatusReason: op.StatusReason}
	if op.Authentication != nil {
		d.Authentication = *op.Authentication
	}
	if op.Capabilities != nil {
		d.Capabilities = *op.Capabilities
	}
	var err error
	twinEtag := "*"
	switch mode := strings.ToLower(op.ImportMode); mode {
	case "create":
		_, err = r.CreateDevice(ctx, d)
	case "update", "updateifmatchetag":
		etag := "*"
		if mode == "updateifmatchetag" {
			etag = op.ETag
		}
		_, err = r.UpdateDevice(ctx, d, etag)
	case "delete", "deleteifmatchetag":
		etag := "*"
		if mode == "deleteifmatchetag" {
			etag = op.ETag
		}
		return r.DeleteDevice(ctx, op.ID, etag)
	case "updatetwin":
	case "updatetwinifmatchetag":
		twinEtag = op.TwinETag
	default:
		return argInvalid("importMode %q is not one of create, update, updateIfMatchETag, delete, deleteIfMatchETag, updateTwin, updateTwinIfMatchETag", op.ImportMode)
	}
	if err != nil || (op.Tags == nil && (op.Properties == nil || op.Properties.Desired == nil)) {
		return err
	}
	var desired map[string]any
	if op.Properties != nil {
		desired = op.Properties.Desired
	}
	p, err := iothub.NewTwinPatch(op.Tags, desired)
	if err != nil {
		return err
	}
	_, err = r.applyTwin(ctx, op.ID, p, twinEtag, false)
	return err
}

// renderDevice is the REST view of a device identity (docs/iothub.md §4.3).
func renderDevice(rec *record, lv live) Device {
	state := StateDisconnected
	if lv.connected {
		state = StateConnected
	}
	return Device{
		DeviceID:                   rec.ID,
		GenerationID:               rec.Generation,
		Etag:                       deviceEtag(rec.Etag),
		ConnectionState:            state,
		Status:                     rec.Status,
		StatusReason:               rec.StatusReason,
		ConnectionStateUpdatedTime: formatTime(lv.stateChanged),
		StatusUpdatedTime:          formatTime(rec.StatusUpdated),
		LastActivityTime:           formatTime(lv.lastActivity),
		Authentication:             renderAuth(rec),
		Capabilities:               Capabilities{IotEdge: rec.IotEdge},
		ParentScopes:               []string{},
	}
}
