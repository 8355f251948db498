package registry

import (
	"context"
	"fmt"
	"slices"

	"github.com/fleetsim/fleetsim/hubjobs/query"
)

// The registry is the query.Source of FROM devices: keys are device ids,
// documents the twins with canonical names (docs/iothub.md §6), built on first
// read after a change and cached per device. Cached documents are never
// modified (a change builds a new one), so queries may hold them without
// locks.

// Get implements query.Source: the twin document of a device.
func (r *Registry) Get(key string) (map[string]any, bool) {
	e, err := r.lockEntry(key)
	if err != nil {
		return nil, false
	}
	defer e.mu.Unlock()
	if e.doc == nil {
		e.doc = twinDoc(e.rec, e.live)
	}
	return e.doc, true
}

// Scan implements query.Source: twin documents in ascending id order,
// starting strictly after key after.
func (r *Registry) Scan(after string, fn func(key string, doc map[string]any) bool) {
	ids := r.sortedIDs()
	start := 0
	if after != "" {
		start, _ = slices.BinarySearch(ids, after)
		if start < len(ids) && ids[start] == after {
			start++
		}
	}
	for _, id := range ids[start:] {
		doc, ok := r.Get(id)
		if ok && !fn(id, doc) {
			return
		}
	}
}

// Query runs a query over device twins (POST /devices/query, docs/iothub.md
// §4.5). FROM devices.modules runs over module twins (modules.go);
// FROM devices.jobs belongs to the jobs engine and is ArgumentInvalid here.
// Query errors (a bad continuation token) match query.ErrInvalidQuery.
func (r *Registry) Query(q *query.Query, pageSize int, continuation string) (query.Page, error) {
	switch q.From() {
	case query.Devices:
		return q.Execute(r, r.index, pageSize, continuation)
	case query.Modules:
		return q.Execute(moduleSource{r}, nil, pageSize, continuation)
	}
	return query.Page{}, argInvalid("FROM %s is not served by the device registry", q.From())
}

// SelectDeviceIDs returns the ids of the devices whose twins match q's
// condition, in ascending order: how a job turns its queryCondition into a
// device set. It stops with ctx.
func (r *Registry) SelectDeviceIDs(ctx context.Context, q *query.Query) ([]string, error) {
	if q.From() != query.Devices {
		return nil, argInvalid("a job condition selects devices, not %s", q.From())
	}
	if !q.HasCondition() {
		// Every device: the ids alone, without building 100k query documents.
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("select devices: %w", err)
		}
		return slices.Clone(r.sortedIDs()), nil
	}
	var ids []string
	err := q.Select(r, r.index, func(key string) bool {
		ids = append(ids, key)
		return len(ids)%1024 != 0 || ctx.Err() == nil
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("select devices: %w", err)
	}
	return ids, nil
}

// Constant parts of documents, shared by every device.
var (
	capabilitiesOff = map[string]any{"iotEdge": false}
	capabilitiesOn  = map[string]any{"iotEdge": true}
	x509None        = map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil}
)

// twinDoc is the query document of a twin: the service view without
// $metadata, numbers as float64 like decoded JSON.
func twinDoc(rec *record, lv live) map[string]any {
	state := StateDisconnected
	if lv.connected {
		state = StateConnected
	}
	caps := capabilitiesOff
	if rec.IotEdge {
		caps = capabilitiesOn
	}
	desired := withVersionFloat(rec.Desired, rec.DesiredVersion)
	reported := withVersionFloat(rec.Reported, rec.ReportedVersion)
	doc := map[string]any{
		"deviceId":                  rec.ID,
		"etag":                      twinEtag(rec.TwinEtag),
		"deviceEtag":                deviceEtag(rec.Etag),
		"status":                    rec.Status,
		"statusUpdateTime":          formatTime(rec.StatusUpdated),
		"connectionState":           state,
		"lastActivityTime":          formatTime(lv.lastActivity),
		"cloudToDeviceMessageCount": 0.0,
		"authenticationType":        AuthenticationSAS,
		"x509Thumbprint":            x509None,
		"modelId":                   "",
		"version":                   float64(rec.TwinVersion),
		"capabilities":              caps,
		"properties":                map[string]any{"desired": desired, "reported": reported},
	}
	if rec.StatusReason != nil {
		doc["statusReason"] = *rec.StatusReason
	}
	if rec.Tags != nil {
		doc["tags"] = rec.Tags
	}
	return doc
}

func withVersionFloat(section map[string]any, version int64) map[string]any {
	out := make(map[string]any, len(section)+1)
	for k, v := range section {
		out[k] = v
	}
	out["$version"] = float64(version)
	return out
}

// indexDoc is what the query index looks at (deviceId, status, tags), so
// writes need not build the whole document.
func indexDoc(rec *record) map[string]any {
	d := map[string]any{"deviceId": rec.ID, "status": rec.Status}
	if rec.Tags != nil {
		d["tags"] = rec.Tags
	}
	return d
}

var _ query.Source = (*Registry)(nil)
