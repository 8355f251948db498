package registry

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// GetTwin returns a device twin (GET /twins/{id}), or DeviceNotFound.
func (r *Registry) GetTwin(id string) (Twin, error) {
	if err := deviceOnly(id); err != nil {
		return Twin{}, err
	}
	e, err := r.lockEntry(id)
	if err != nil {
		return Twin{}, err
	}
	rec, lv := e.rec, e.live
	e.mu.Unlock()
	return renderTwin(rec, lv), nil
}

// PatchTwin merges tags and desired properties into a twin (PATCH
// /twins/{id}, docs/iothub.md §3.6): objects merge recursively, null deletes. A
// desired change is pushed to the device if it is connected and subscribed
// (docs/iothub.md §3.4). Errors: DeviceNotFound, PreconditionFailed (If-Match),
// ArgumentInvalid (JSON, names, depth, values, sizes), ThrottlingException,
// ServerError, ServiceUnavailable.
func (r *Registry) PatchTwin(ctx context.Context, id string, patch []byte, ifMatch string) (Twin, error) {
	p, err := iothub.ParseTwinPatch(patch)
	if err != nil {
		return Twin{}, err
	}
	return r.PatchTwinWith(ctx, id, p, ifMatch)
}

// PatchTwinWith is PatchTwin with a patch already parsed and checked.
func (r *Registry) PatchTwinWith(ctx context.Context, id string, p iothub.TwinPatch, ifMatch string) (Twin, error) {
	if err := deviceOnly(id); err != nil {
		return Twin{}, err
	}
	return rendered(r.applyTwin(ctx, id, p, ifMatch, false))
}

// ReplaceTwin replaces a twin's tags and desired properties (PUT
// /twins/{id}); an absent section becomes empty. The device receives the
// whole new desired document if it changed. Errors as PatchTwin.
func (r *Registry) ReplaceTwin(ctx context.Context, id string, twin []byte, ifMatch string) (Twin, error) {
	p, err := iothub.ParseTwinPatch(twin)
	if err != nil {
		return Twin{}, err
	}
	return r.ReplaceTwinWith(ctx, id, p, ifMatch)
}

// ReplaceTwinWith is ReplaceTwin with a replacement already parsed and
// checked.
func (r *Registry) ReplaceTwinWith(ctx context.Context, id string, p iothub.TwinPatch, ifMatch string) (Twin, error) {
	if err := deviceOnly(id); err != nil {
		return Twin{}, err
	}
	return rendered(r.applyTwin(ctx, id, p, ifMatch, true))
}

// ForceUpdateTwin applies a twin job's patch to one device with etag "*":
// the same errors as PatchTwin. The job parsed and checked the patch once,
// so no device pays for that again and none fails on a rule the job's
// creation checked.
func (r *Registry) ForceUpdateTwin(ctx context.Context, id string, p iothub.TwinPatch) error {
	if err := deviceOnly(id); err != nil {
		return err
	}
	_, err := r.applyTwin(ctx, id, p, "*", false)
	return err
}

// applied is a twin as a write left it; rendering it is left to the callers
// that answer with it (a twin job's device operation does not).
type applied struct {
	rec record
	lv  live
}

// rendered is the twin a successful applyTwin left.
func rendered(a applied, err error) (Twin, error) {
	if err != nil {
		return Twin{}, err
	}
	return renderTwin(&a.rec, a.lv), nil
}

func (r *Registry) applyTwin(ctx context.Context, id string, p iothub.TwinPatch, ifMatch string, replace bool) (applied, error) {
	if err := checkCtx(ctx); err != nil {
		return applied{}, err
	}
	e, err := r.lockWritable(id)
	if err != nil {
		return applied{}, err
	}
	defer func() {
		if e != nil {
			e.mu.Unlock()
		}
	}()
	old := e.latest()
	if !etagMatches(ifMatch, twinEtag(old.TwinEtag)) {
		return applied{}, iothub.Errorf(iothub.CodePreconditionFailed, "Precondition failed: the twin etag does not match If-Match.")
	}
	rec := *old
	now := time.Now()
	tagsChanged := false
	var change map[string]any // what the device is told, docs/iothub.md §3.4
	if replace {
		tags := withoutNulls(p.Tags())
		if !reflect.DeepEqual(tags, old.Tags) && (len(tags) > 0 || old.Tags != nil) {
			rec.Tags, tagsChanged = tags, true
		}
		desired := withoutNulls(p.Desired())
		if !reflect.DeepEqual(desired, old.Desired) {
			rec.DesiredVersion++
			rec.Desired = desired
			rec.DesiredMeta = newMeta(desired, now, rec.DesiredVersion)
			change = desired
		}
	} else {
		if tags := p.Tags(); tags != nil {
			rec.Tags, tagsChanged = merge(old.Tags, tags), true
		}
		if desired := p.Desired(); len(desired) > 0 {
			rec.DesiredVersion++
			rec.Desired = merge(old.Desired, desired)
			rec.DesiredMeta = mergeMeta(old.DesiredMeta, desired, now, rec.DesiredVersion)
			change = desired
		}
	}
	// docs/iothub.md §3.5: the limits apply to the result of the operation.
	if err := checkSize(iothub.TwinTags, rec.Tags); err != nil {
		return applied{}, err
	}
	if err := checkSize(iothub.TwinDesired, rec.Desired); err != nil {
		return applied{}, err
	}
	rec.TwinVersion++
	rec.TwinEtag++
	var push []byte
	if change != nil {
		body := make(map[string]any, len(change)+1)
		maps.Copy(body, change)
		body["$version"] = rec.DesiredVersion
		push, _ = json.Marshal(body) // plain JSON values: cannot fail
	}
	version := rec.DesiredVersion
	wait := newDurable()
	ent := e
	after := func(err error) {
		if err == nil && push != nil {
			r.pushDesired(ent, id, version, push)
		}
		wait.done(err)
	}
	if err := r.commitLocked(e, &rec, tagsChanged, after); err != nil {
		return applied{}, err
	}
	lv := e.live
	e.mu.Unlock()
	e = nil
	if err := wait.wait(id); err != nil {
		return applied{}, err
	}
	return applied{rec, lv}, nil
}

// pushDesired sends a desired-properties patch to the device (its entry e)
// if it is connected and subscribed; it is not queued for offline devices
// (docs/iothub.md §3.4).
func (r *Registry) pushDesired(e *entry, id string, version int64, body []byte) {
	l := r.linked()
	if l == nil || e.subs.Load()&subDesired == 0 {
		return
	}
	if err := l.Deliver(id, iothub.DesiredPatchTopic(version), body); err != nil {
		r.log.Debug().Err(err).Str("device", id).Msg("desired patch not delivered")
	}
}

// renderTwin is the service view of a twin (docs/iothub.md §3.1).
func renderTwin(rec *record, lv live) Twin {
	state := StateDisconnected
	if lv.connected {
		state = StateConnected
	}
	desired := make(map[string]any, len(rec.Desired)+2)
	maps.Copy(desired, rec.Desired)
	desired["$metadata"] = metaJSON(rec.DesiredMeta, true)
	desired["$version"] = rec.DesiredVersion
	reported := make(map[string]any, len(rec.Reported)+2)
	maps.Copy(reported, rec.Reported)
	reported["$metadata"] = metaJSON(rec.ReportedMeta, false)
	reported["$version"] = rec.ReportedVersion
	return Twin{
		DeviceID:           rec.ID,
		ModuleID:           rec.Module,
		Etag:               twinEtag(rec.TwinEtag),
		DeviceEtag:         deviceEtag(rec.Etag),
		Status:             rec.Status,
		StatusReason:       rec.StatusReason,
		StatusUpdateTime:   formatTime(rec.StatusUpdated),
		ConnectionState:    state,
		LastActivityTime:   formatTime(lv.lastActivity),
		AuthenticationType: rec.authType(),
		X509Thumbprint:     renderThumbprints(rec),
		Version:            rec.TwinVersion,
		Tags:               rec.Tags,
		Properties:         TwinProperties{Desired: desired, Reported: reported},
		Capabilities:       Capabilities{IotEdge: rec.IotEdge},
	}
}
