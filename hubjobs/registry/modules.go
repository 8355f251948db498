package registry

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Module identities live beside devices: each has its own entry (keys,
// twin, connection state) under the key "deviceId/moduleId", which is also
// its MQTT client id and its record's id in the store. Device ids cannot
// contain '/', so the twin, method and device-side code serves both with
// the key alone, and the device path pays one byte search in lookup.

// MaxModulesPerDevice is IoT Hub's limit of module identities on one device.
const MaxModulesPerDevice = 50

// Module is a module identity as the registry REST API shows it. As input
// (CreateModule, UpdateModule) only moduleId, deviceId, managedBy and
// authentication.symmetricKey are read; the rest is computed.
type Module struct {
	ModuleID                   string         `json:"moduleId"`
	DeviceID                   string         `json:"deviceId"`
	ManagedBy                  string         `json:"managedBy"`
	GenerationID               string         `json:"generationId"`
	Etag                       string         `json:"etag"`
	ConnectionState            string         `json:"connectionState"`
	ConnectionStateUpdatedTime string         `json:"connectionStateUpdatedTime"`
	LastActivityTime           string         `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
}

// moduleKey is a module's key: its MQTT client id and store id.
func moduleKey(deviceID, moduleID string) string { return deviceID + "/" + moduleID }

// key is the record's key: the device id, or a module's "deviceId/moduleId".
func (rec *record) key() string {
	if rec.Module == "" {
		return rec.ID
	}
	return moduleKey(rec.ID, rec.Module)
}

func moduleNotFound(deviceID, moduleID string) error {
	return iothub.Errorf(iothub.CodeModuleNotFound, "Module %s on device %s not found.", moduleID, deviceID)
}

// deviceOnly refuses a device id with '/', which would name a module.
func deviceOnly(id string) error {
	if strings.IndexByte(id, '/') >= 0 {
		return iothub.Errorf(iothub.CodeDeviceNotFound, "Device %s not found.", id)
	}
	return nil
}

// moduleKeyOf checks both ids and returns the module's key. An id that is
// not valid cannot be registered, so it is not found.
func moduleKeyOf(deviceID, moduleID string) (string, error) {
	if iothub.ValidDeviceID(deviceID) != nil {
		return "", notFound(deviceID)
	}
	if iothub.ValidDeviceID(moduleID) != nil {
		return "", moduleNotFound(deviceID, moduleID)
	}
	return moduleKey(deviceID, moduleID), nil
}

// loadModules shows the modules load found: those whose device was loaded
// too. A module left behind by a device deletion that did not finish is
// not shown.
func (r *Registry) loadModules() {
	for k, e := range r.modules {
		if r.devices[e.rec.ID] == nil {
			delete(r.modules, k)
			continue
		}
		r.modsOf[e.rec.ID] = append(r.modsOf[e.rec.ID], e.rec.Module)
	}
	for id, mods := range r.modsOf {
		slices.Sort(mods)
		r.modsOf[id] = mods
	}
}

// CreateModule registers a module on a device: PUT
// /devices/{id}/modules/{moduleId} without If-Match. Empty keys are
// generated. Errors: DeviceNotFound, ArgumentInvalid (ids, keys,
// authentication type), ModuleAlreadyExistsOnDevice, IotHubQuotaExceeded
// (MaxModulesPerDevice), ThrottlingException, ServerError, ServiceUnavailable.
func (r *Registry) CreateModule(ctx context.Context, m Module) (Module, error) {
	if err := checkCtx(ctx); err != nil {
		return Module{}, err
	}
	if err := iothub.ValidDeviceID(m.ModuleID); err != nil {
		return Module{}, argInvalid("module id: %v", err)
	}
	if err := deviceOnly(m.DeviceID); err != nil {
		return Module{}, err
	}
	auth, err := checkModuleAuth(m.Authentication)
	if err != nil {
		return Module{}, err
	}
	p, s, err := decodeKeys(m.Authentication.SymmetricKey, true)
	if err != nil {
		return Module{}, err
	}
	now := time.Now()
	rec := &record{
		ID:              m.DeviceID,
		Module:          m.ModuleID,
		ManagedBy:       m.ManagedBy,
		Generation:      strconv.FormatInt(r.gens.Add(1), 10),
		Etag:            r.etags.Add(1),
		Primary:         p,
		Secondary:       s,
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
	key := rec.key()
	e := &entry{online: make(chan struct{})}
	r.mu.Lock()
	dev := r.devices[m.DeviceID]
	if dev == nil {
		r.mu.Unlock()
		return Module{}, notFound(m.DeviceID)
	}
	dev.mu.Lock()
	devGone := dev.gone || dev.deleting || dev.rec == nil
	dev.mu.Unlock()
	if devGone {
		r.mu.Unlock()
		return Module{}, notFound(m.DeviceID)
	}
	if _, ok := r.modules[key]; ok {
		r.mu.Unlock()
		return Module{}, iothub.Errorf(iothub.CodeModuleAlreadyExistsOnDevice, "A module with ID '%s' already exists on device '%s'.", m.ModuleID, m.DeviceID)
	}
	if n := len(r.modsOf[m.DeviceID]); n >= MaxModulesPerDevice {
		r.mu.Unlock()
		return Module{}, iothub.Errorf(iothub.CodeIotHubQuotaExceeded, "Device %s already has %d modules, the most a device may have.", m.DeviceID, n)
	}
	err = r.createLocked(key, e, rec, creation{
		add: func() {
			r.modules[key] = e
			r.addModIDLocked(rec.ID, rec.Module) // counts against the limit from now on
		},
		show: func() { r.showModuleLocked(e, rec) },
		remove: func() {
			if r.modules[key] == e {
				delete(r.modules, key)
				r.removeModIDLocked(rec.ID, rec.Module)
			}
		},
	})
	if err != nil {
		return Module{}, err
	}
	return renderModule(rec, live{}), nil
}

// addModIDLocked adds a module id to its device's list, which holds the
// modules being created too (readers skip those). The caller holds
// Registry.mu.
func (r *Registry) addModIDLocked(deviceID, moduleID string) {
	mods := r.modsOf[deviceID]
	if i, found := slices.BinarySearch(mods, moduleID); !found {
		r.modsOf[deviceID] = slices.Insert(mods, i, moduleID)
	}
}

// removeModIDLocked removes a module id from its device's list. The
// caller holds Registry.mu.
func (r *Registry) removeModIDLocked(deviceID, moduleID string) {
	mods := r.modsOf[deviceID]
	if i, found := slices.BinarySearch(mods, moduleID); found {
		mods = slices.Delete(mods, i, i+1)
	}
	if len(mods) == 0 {
		delete(r.modsOf, deviceID)
	} else {
		r.modsOf[deviceID] = mods
	}
}

// showModuleLocked makes a created module visible. The caller holds
// Registry.mu (and e.mu if others may see e).
func (r *Registry) showModuleLocked(e *entry, rec *record) {
	e.rec = rec
}

// hideModuleLocked removes a deleted module and wakes its waiters. The
// caller holds Registry.mu and e.mu.
func (r *Registry) hideModuleLocked(e *entry, key string) {
	e.gone = true
	e.wakeLocked()
	if r.modules[key] != e {
		return
	}
	delete(r.modules, key)
	dev, mod, _ := strings.Cut(key, "/")
	r.removeModIDLocked(dev, mod)
}

// UpdateModule updates a module identity: PUT
// /devices/{id}/modules/{moduleId} with If-Match ("*" or the module's
// etag). Non-empty keys and managedBy are taken from m. Errors:
// ModuleNotFound, DeviceNotFound, PreconditionFailed, ArgumentInvalid,
// ThrottlingException, ServerError, ServiceUnavailable.
func (r *Registry) UpdateModule(ctx context.Context, m Module, ifMatch string) (Module, error) {
	if err := checkCtx(ctx); err != nil {
		return Module{}, err
	}
	key, err := moduleKeyOf(m.DeviceID, m.ModuleID)
	if err != nil {
		return Module{}, err
	}
	auth, err := checkModuleAuth(m.Authentication)
	if err != nil {
		return Module{}, err
	}
	p, s, err := decodeKeys(m.Authentication.SymmetricKey, false)
	if err != nil {
		return Module{}, err
	}
	rec, lv, err := r.updateIdentity(key, ifMatch, "module", p, s, func(rec *record) {
		rec.ManagedBy = m.ManagedBy
		setAuth(rec, auth)
	})
	if err != nil {
		return Module{}, err
	}
	return renderModule(rec, lv), nil
}

// GetModule returns a module identity, or ModuleNotFound.
func (r *Registry) GetModule(deviceID, moduleID string) (Module, error) {
	key, err := moduleKeyOf(deviceID, moduleID)
	if err != nil {
		return Module{}, err
	}
	e, err := r.lockEntry(key)
	if err != nil {
		return Module{}, err
	}
	rec, lv := e.rec, e.live
	e.mu.Unlock()
	return renderModule(rec, lv), nil
}

// ListModules returns a device's module identities in id order
// (GET /devices/{id}/modules), or DeviceNotFound.
func (r *Registry) ListModules(deviceID string) ([]Module, error) {
	if _, err := r.GetDevice(deviceID); err != nil {
		return nil, err
	}
	r.mu.RLock()
	mods := slices.Clone(r.modsOf[deviceID])
	r.mu.RUnlock()
	out := make([]Module, 0, len(mods))
	for _, mod := range mods {
		if m, err := r.GetModule(deviceID, mod); err == nil {
			out = append(out, m)
		}
	}
	return out, nil
}

// DeleteModule removes a module (DELETE /devices/{id}/modules/{moduleId},
// If-Match "*" or the module's etag) and disconnects it. Errors:
// ModuleNotFound, PreconditionFailed, ThrottlingException, ServerError,
// ServiceUnavailable.
func (r *Registry) DeleteModule(ctx context.Context, deviceID, moduleID, ifMatch string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	key, err := moduleKeyOf(deviceID, moduleID)
	if err != nil {
		return err
	}
	r.mu.Lock()
	e := r.modules[key]
	if e == nil {
		r.mu.Unlock()
		return notFound(key)
	}
	e.mu.Lock()
	if e.gone || e.deleting || e.rec == nil {
		e.mu.Unlock()
		r.mu.Unlock()
		return notFound(key)
	}
	if !etagMatches(ifMatch, deviceEtag(e.latest().Etag)) {
		e.mu.Unlock()
		r.mu.Unlock()
		return iothub.Errorf(iothub.CodePreconditionFailed, "Precondition failed: the module etag does not match If-Match.")
	}
	wait, err := r.deleteModuleLocked(e, key)
	e.mu.Unlock()
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if wait != nil {
		if err := wait.wait(key); err != nil {
			return err
		}
	}
	if l := r.linked(); l != nil {
		l.Disconnect(key)
	}
	return nil
}

// deleteModuleLocked deletes a module at once (memory only) or queues its
// deletion and returns what to wait for. The caller holds Registry.mu and e.mu.
func (r *Registry) deleteModuleLocked(e *entry, key string) (durable, error) {
	if r.com == nil {
		select {
		case <-r.closing:
			return nil, unavailable()
		default:
		}
		r.hideModuleLocked(e, key)
		return nil, nil
	}
	return r.queueDeletionLocked(e, key, r.hideModuleLocked)
}

// modWait is a queued module deletion.
type modWait struct {
	key  string
	wait durable
}

// deleteModulesLocked queues the deletion of every module of a device
// being deleted, ahead of the device's own. The caller holds Registry.mu
// and the device's entry lock (a device's lock comes before its modules').
func (r *Registry) deleteModulesLocked(deviceID string) ([]modWait, error) {
	var waits []modWait
	for _, mod := range r.modsOf[deviceID] {
		key := moduleKey(deviceID, mod)
		e := r.modules[key]
		if e == nil {
			continue
		}
		e.mu.Lock()
		if e.gone || e.deleting {
			e.mu.Unlock()
			continue
		}
		w, err := r.deleteModuleLocked(e, key)
		e.mu.Unlock()
		if err != nil {
			return waits, err
		}
		waits = append(waits, modWait{key, w})
	}
	return waits, nil
}

// waitModules waits for queued module deletions and disconnects the modules.
func (r *Registry) waitModules(waits []modWait) error {
	var first error
	keys := make([]string, 0, len(waits))
	for _, w := range waits {
		if err := w.wait.wait(w.key); err != nil && first == nil {
			first = err
		}
		keys = append(keys, w.key)
	}
	r.disconnectAll(keys)
	return first
}

// dropModulesLocked deletes a device's modules at once (memory only) and
// returns their keys. The caller holds Registry.mu and the device's lock.
func (r *Registry) dropModulesLocked(deviceID string) []string {
	var keys []string
	for _, mod := range slices.Clone(r.modsOf[deviceID]) {
		key := moduleKey(deviceID, mod)
		if e := r.modules[key]; e != nil {
			e.mu.Lock()
			r.hideModuleLocked(e, key)
			e.mu.Unlock()
			keys = append(keys, key)
		}
	}
	return keys
}

func (r *Registry) disconnectAll(keys []string) {
	if l := r.linked(); l != nil {
		for _, k := range keys {
			l.Disconnect(k)
		}
	}
}

// ModuleCredentials returns a module's raw keys and whether it may connect
// (its device is enabled), or an error matching ErrDeviceNotFound or an
// iothub.Error with ModuleNotFound. It does no I/O.
func (r *Registry) ModuleCredentials(deviceID, moduleID string) (primary, secondary []byte, enabled bool, err error) {
	_, _, enabled, err = r.Credentials(deviceID)
	if err != nil {
		return nil, nil, false, err
	}
	key, err := moduleKeyOf(deviceID, moduleID)
	if err != nil {
		return nil, nil, false, err
	}
	e, err := r.lockEntry(key)
	if err != nil {
		return nil, nil, false, err
	}
	rec := e.rec
	e.mu.Unlock()
	return rec.Primary, rec.Secondary, enabled, nil
}

// GetModuleTwin returns a module twin (GET /twins/{id}/modules/{moduleId}).
func (r *Registry) GetModuleTwin(deviceID, moduleID string) (Twin, error) {
	key, err := moduleKeyOf(deviceID, moduleID)
	if err != nil {
		return Twin{}, err
	}
	e, err := r.lockEntry(key)
	if err != nil {
		return Twin{}, err
	}
	rec, lv := e.rec, e.live
	e.mu.Unlock()
	return renderTwin(rec, lv), nil
}

// PatchModuleTwinWith merges tags and desired properties into a module
// twin (PATCH /twins/{id}/modules/{moduleId}); a desired change is pushed to
// the module's connection. Errors as PatchTwin, with ModuleNotFound.
func (r *Registry) PatchModuleTwinWith(ctx context.Context, deviceID, moduleID string, p iothub.TwinPatch, ifMatch string) (Twin, error) {
	key, err := moduleKeyOf(deviceID, moduleID)
	if err != nil {
		return Twin{}, err
	}
	return rendered(r.applyTwin(ctx, key, p, ifMatch, false))
}

// ReplaceModuleTwinWith replaces a module twin's tags and desired
// properties (PUT /twins/{id}/modules/{moduleId}).
func (r *Registry) ReplaceModuleTwinWith(ctx context.Context, deviceID, moduleID string, p iothub.TwinPatch, ifMatch string) (Twin, error) {
	key, err := moduleKeyOf(deviceID, moduleID)
	if err != nil {
		return Twin{}, err
	}
	return rendered(r.applyTwin(ctx, key, p, ifMatch, true))
}

// InvokeModuleMethod calls a direct method on a module (POST
// /twins/{id}/modules/{moduleId}/methods): the request goes to the
// module's own connection. Errors as InvokeMethod, with ModuleNotFound.
func (r *Registry) InvokeModuleMethod(ctx context.Context, deviceID, moduleID string, req iothub.MethodRequest) (iothub.MethodResult, error) {
	key, err := moduleKeyOf(deviceID, moduleID)
	if err != nil {
		return iothub.MethodResult{}, err
	}
	return r.invoke(ctx, key, req)
}

// renderModule is the REST view of a module identity.
func renderModule(rec *record, lv live) Module {
	state := StateDisconnected
	if lv.connected {
		state = StateConnected
	}
	return Module{
		ModuleID:                   rec.Module,
		DeviceID:                   rec.ID,
		ManagedBy:                  rec.ManagedBy,
		GenerationID:               rec.Generation,
		Etag:                       deviceEtag(rec.Etag),
		ConnectionState:            state,
		ConnectionStateUpdatedTime: formatTime(lv.stateChanged),
		LastActivityTime:           formatTime(lv.lastActivity),
		Authentication:             renderAuth(rec),
	}
}

// moduleSource is the query.Source of FROM devices.modules: module twins
// in key order ("deviceId/moduleId"), each with deviceId and moduleId.
type moduleSource struct{ r *Registry }

func (s moduleSource) Get(key string) (map[string]any, bool) {
	if strings.IndexByte(key, '/') < 0 {
		return nil, false
	}
	e, err := s.r.lockEntry(key)
	if err != nil {
		return nil, false
	}
	defer e.mu.Unlock()
	if e.doc == nil {
		doc := twinDoc(e.rec, e.live)
		doc["moduleId"] = e.rec.Module
		delete(doc, "status")
		delete(doc, "statusUpdateTime")
		delete(doc, "capabilities")
		e.doc = doc
	}
	return e.doc, true
}

func (s moduleSource) Scan(after string, fn func(key string, doc map[string]any) bool) {
	s.r.mu.RLock()
	keys := make([]string, 0, len(s.r.modules))
	for dev, mods := range s.r.modsOf {
		for _, m := range mods {
			keys = append(keys, moduleKey(dev, m))
		}
	}
	s.r.mu.RUnlock()
	slices.Sort(keys)
	for _, k := range keys {
		if after != "" && k <= after {
			continue
		}
		doc, ok := s.Get(k)
		if ok && !fn(k, doc) {
			return
		}
	}
}

var _ query.Source = moduleSource{}

// checkModuleAuth reads a module's authentication and refuses what fleetsim
// does not take for a module: a module authenticates with SAS keys or a
// self-signed certificate's thumbprints; certificateAuthority is for devices.
func checkModuleAuth(a Authentication) (authSpec, error) {
	spec, err := parseAuth(a)
	if err != nil {
		return authSpec{}, err
	}
	if spec.typ == AuthenticationCA {
		return authSpec{}, argInvalid("authentication type %q is not supported for modules; modules use sas or selfSigned", spec.typ)
	}
	return spec, nil
}

// ModuleAuthentication returns how a module authenticates (Enabled is its
// device's), or an error matching ErrDeviceNotFound or ModuleNotFound. It
// does no I/O: the broker calls it on the connecting module's goroutine.
func (r *Registry) ModuleAuthentication(deviceID, moduleID string) (DeviceAuth, error) {
	_, _, enabled, err := r.Credentials(deviceID)
	if err != nil {
		return DeviceAuth{}, err
	}
	key, err := moduleKeyOf(deviceID, moduleID)
	if err != nil {
		return DeviceAuth{}, err
	}
	e, err := r.lockEntry(key)
	if err != nil {
		return DeviceAuth{}, err
	}
	rec := e.rec
	e.mu.Unlock()
	return authOf(rec, enabled), nil
}
