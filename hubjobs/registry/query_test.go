package registry_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
)

func TestQueryAndSelect(t *testing.T) {
	r, l, _ := newReg(t, false)
	for i := range 10 {
		id := fmt.Sprintf("d%d", i)
		must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: id}))
		must[registry.Twin](t)(r.PatchTwin(ctx, id, []byte(fmt.Sprintf(`{"tags":{"building":"%d","floor":%d},"properties":{"desired":{"rate":%d}}}`, 43+i%2, i%3, i)), "*"))
	}
	l.setOnline("d4", true)
	answer(t, r, l, "d4", "$iothub/twin/PATCH/properties/reported/?$rid=1", `{"fw":"1.2"}`)
	r.UpdateDevice(ctx, registry.Device{DeviceID: "d9", Status: "disabled"}, "*")

	tests := []struct {
		cond string
		want string
	}{
		{"tags.building = '43' AND tags.floor = 1", "d4"},
		{"*", "d0,d1,d2,d3,d4,d5,d6,d7,d8,d9"},
		{"connectionState = 'Connected'", "d4"},
		{"properties.reported.fw = '1.2'", "d4"},
		{"properties.desired.rate >= 7", "d7,d8,d9"},
		{"properties.desired.$version = 2", "d0,d1,d2,d3,d4,d5,d6,d7,d8,d9"},
		{"status = 'disabled'", "d9"},
		{"deviceId IN ['d3', 'd5', 'nope']", "d3,d5"},
		{"is_defined(tags.floor) AND tags.floor = 2", "d2,d5,d8"},
	}
	for _, tt := range tests {
		q, err := query.ParseCondition(tt.cond)
		if err != nil {
			t.Fatalf("%s: %v", tt.cond, err)
		}
		ids, err := r.SelectDeviceIDs(ctx, q)
		if err != nil || strings.Join(ids, ",") != tt.want {
			t.Errorf("%s: %v %v, want %s", tt.cond, ids, err, tt.want)
		}
	}

	// The index follows changes and deletions.
	q, _ := query.ParseCondition("tags.building = '43' AND tags.floor = 1")
	must[registry.Twin](t)(r.PatchTwin(ctx, "d4", []byte(`{"tags":{"building":"99"}}`), "*"))
	must[registry.Twin](t)(r.PatchTwin(ctx, "d6", []byte(`{"tags":{"floor":1}}`), "*"))
	if ids, _ := r.SelectDeviceIDs(ctx, q); strings.Join(ids, ",") != "d6" {
		t.Errorf("after patches: %v", ids)
	}
	r.DeleteDevice(ctx, "d6", "*")
	if ids, _ := r.SelectDeviceIDs(ctx, q); len(ids) != 0 {
		t.Errorf("after delete: %v", ids)
	}
	all, _ := query.ParseCondition("*")
	if ids, _ := r.SelectDeviceIDs(ctx, all); strings.Join(ids, ",") != "d0,d1,d2,d3,d4,d5,d7,d8,d9" {
		t.Errorf("* after delete: %v", ids)
	}

	// Paging through FROM devices, with projections.
	full, err := query.Parse("SELECT deviceId, properties.desired.rate FROM devices WHERE tags.building = '43'")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	cont := ""
	for pages := 0; ; pages++ {
		page, err := r.Query(full, 2, cont)
		if err != nil || pages > 5 {
			t.Fatalf("page %d: %v", pages, err)
		}
		for _, it := range page.Items {
			got = append(got, fmt.Sprint(it))
		}
		if cont = page.Continuation; cont == "" {
			break
		}
	}
	if s := strings.Join(got, " "); s != "map[deviceId:d0 rate:0] map[deviceId:d2 rate:2] map[deviceId:d8 rate:8]" {
		t.Errorf("paged query: %s", s)
	}

	star, _ := query.Parse("SELECT * FROM devices WHERE deviceId = 'd4'")
	page, err := r.Query(star, 0, "")
	if err != nil || len(page.Items) != 1 || page.ItemType != query.ItemTwin {
		t.Fatalf("SELECT *: %+v %v", page, err)
	}
	doc := page.Items[0].(map[string]any)
	if at(doc, "connectionState") != "Connected" || at(doc, "lastActivityTime") == "0001-01-01T00:00:00Z" || at(doc, "properties", "reported", "$version") != 2.0 || at(doc, "tags", "building") != "99" {
		t.Errorf("twin document %v", doc)
	}

	count, _ := query.Parse("SELECT COUNT() AS n FROM devices")
	if page, err := r.Query(count, 0, ""); err != nil || fmt.Sprint(page.Items) != "[map[n:9]]" {
		t.Errorf("COUNT: %v %v", page.Items, err)
	}
	modules, _ := query.Parse("SELECT * FROM devices.modules")
	if page, err := r.Query(modules, 0, ""); err != nil || len(page.Items) != 0 {
		t.Errorf("modules: %v %v", page.Items, err)
	}
	jobs, _ := query.Parse("SELECT * FROM devices.jobs")
	if _, err := r.Query(jobs, 0, ""); code(err) != "ArgumentInvalid" {
		t.Errorf("devices.jobs: %v", err)
	}
	if _, err := r.Query(full, 2, "garbage"); err == nil {
		t.Error("a bad continuation token was accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for _, q := range []*query.Query{q, all} {
		if _, err := r.SelectDeviceIDs(cctx, q); err == nil {
			t.Errorf("SelectDeviceIDs(%s) ignored a cancelled context", q)
		}
	}
}
