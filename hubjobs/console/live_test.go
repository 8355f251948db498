package console

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// fakeDevices is a registry of twin documents in id order.
type fakeDevices struct {
	ids  []string
	docs map[string]map[string]any
}

func newFakeDevices(n int, connected func(i int) bool) *fakeDevices {
	f := &fakeDevices{docs: map[string]map[string]any{}}
	for i := range n {
		id := fmt.Sprintf("d%06d", i)
		state := "Disconnected"
		if connected(i) {
			state = "Connected"
		}
		f.ids = append(f.ids, id)
		f.docs[id] = map[string]any{"deviceId": id, "status": "enabled", "connectionState": state}
	}
	return f
}

func (f *fakeDevices) Scan(after string, fn func(string, map[string]any) bool) {
	i, _ := slices.BinarySearch(f.ids, after)
	for ; i < len(f.ids); i++ {
		if f.ids[i] != after && !fn(f.ids[i], f.docs[f.ids[i]]) {
			return
		}
	}
}

func (f *fakeDevices) SelectDeviceIDs(ctx context.Context, q *query.Query) ([]string, error) {
	var out []string
	for _, id := range f.ids {
		if q.Match(f.docs[id]) {
			out = append(out, id)
		}
	}
	return out, ctx.Err()
}

var errNotHere = errors.New("not in this fake")

func (f *fakeDevices) TwinJSON(string) ([]byte, error) { return nil, errNotHere }
func (f *fakeDevices) PatchTwinJSON(context.Context, string, []byte, string) ([]byte, error) {
	return nil, errNotHere
}
func (f *fakeDevices) InvokeMethod(context.Context, string, iothub.MethodRequest) (iothub.MethodResult, error) {
	return iothub.MethodResult{}, errNotHere
}

// fakeJobs has one job whose rows have the given statuses.
type fakeJobs struct {
	job  jobs.Job
	rows map[string]map[string]any // "jobId/deviceId" -> row
	keys []string
}

func (f *fakeJobs) Create(context.Context, jobs.JobRequest) (jobs.Job, error) {
	return jobs.Job{}, errNotHere
}
func (f *fakeJobs) Get(string) (jobs.Job, error)                     { return f.job, nil }
func (f *fakeJobs) Cancel(context.Context, string) (jobs.Job, error) { return jobs.Job{}, errNotHere }
func (f *fakeJobs) List(string, string, int, string) ([]jobs.Job, string, error) {
	if f.job.JobID == "" {
		return nil, "", nil
	}
	return []jobs.Job{f.job}, "", nil
}
func (f *fakeJobs) Query(q *query.Query, pageSize int, cont string) (query.Page, error) {
	return q.Execute(rowSource{f}, nil, pageSize, cont)
}

func (f *fakeJobs) Rows(jobID string, fn func(map[string]any) bool) {
	prefix := jobID + "/"
	rowSource{f}.Scan(prefix, func(key string, doc map[string]any) bool {
		return strings.HasPrefix(key, prefix) && fn(doc)
	})
}

// rowSource is the fake's devices.jobs collection.
type rowSource struct{ f *fakeJobs }

func (r rowSource) Get(key string) (map[string]any, bool) { d, ok := r.f.rows[key]; return d, ok }
func (r rowSource) Scan(after string, fn func(string, map[string]any) bool) {
	f := r.f
	i, _ := slices.BinarySearch(f.keys, after)
	for ; i < len(f.keys); i++ {
		if f.keys[i] != after && !fn(f.keys[i], f.rows[f.keys[i]]) {
			return
		}
	}
}

type fakeCounters struct{}

func (fakeCounters) Totals() Totals { return Totals{} }

func decodeRLE(t testing.TB, s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for len(b) > 0 {
		code := b[0]
		n, k := binary.Uvarint(b[1:])
		if k <= 0 {
			t.Fatalf("bad run length in %q", s)
		}
		out = append(out, slices.Repeat([]byte{code}, int(n))...)
		b = b[1+k:]
	}
	return out
}

func decodeCells(t testing.TB, f *fleetSnapshot) []byte {
	if f.enc == "raw" {
		b, err := base64.StdEncoding.DecodeString(f.cells)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return decodeRLE(t, f.cells)
}

func TestEncodeRLE(t *testing.T) {
	for _, codes := range [][]byte{
		nil,
		{1},
		{1, 1, 1, 2, 2, 1},
		slices.Repeat([]byte{5}, 100000),
		append(slices.Repeat([]byte{1}, 300), slices.Repeat([]byte{2 | jobRunning<<2}, 70000)...),
	} {
		got := decodeRLE(t, encodeRLE(codes))
		if !slices.Equal(got, codes) && len(got)+len(codes) > 0 {
			t.Errorf("round trip of %d codes gave %d different ones", len(codes), len(got))
		}
	}
}

func TestMergeRows(t *testing.T) {
	ids := []string{"a", "b", "c", "d"}
	for _, tt := range []struct {
		name string
		rows jobRows
		want []byte
	}{
		{"none", jobRows{}, []byte{1, 2, 1, 0}},
		{"some", jobRows{ids: []string{"b", "d"}, codes: []byte{jobFailed, jobCompleted}}, []byte{1, 2 | jobFailed<<2, 1, 0 | jobCompleted<<2}},
		{"unknown devices", jobRows{ids: []string{"0", "bb", "z"}, codes: []byte{jobRunning, jobRunning, jobRunning}}, []byte{1, 2, 1, 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			codes := []byte{1, 2, 1, 0}
			mergeRows(ids, codes, tt.rows)
			if !slices.Equal(codes, tt.want) {
				t.Errorf("codes %v, want %v", codes, tt.want)
			}
		})
	}
}

// fleetFixture is n devices, every third disconnected, and a running job
// over the even ones whose rows are running, completed or failed.
func fleetFixture(n int) (*fakeDevices, *fakeJobs) {
	d := newFakeDevices(n, func(i int) bool { return i%3 != 0 })
	j := &fakeJobs{job: jobs.Job{JobID: "j1", Status: jobs.StatusRunning, CreatedTime: time.Unix(1, 0)}, rows: map[string]map[string]any{}}
	for i, id := range d.ids {
		if i%2 != 0 {
			continue
		}
		st := [...]string{"running", "completed", "completed", "failed"}[i/2%4]
		k := "j1/" + id
		j.keys = append(j.keys, k)
		j.rows[k] = map[string]any{"deviceId": id, "jobId": "j1", "status": st}
	}
	return d, j
}

func TestBuildFleet(t *testing.T) {
	d, j := fleetFixture(12)
	l := newLive(d, j, fakeCounters{})
	l.watchers.Add(1)
	l.wantFleet.Store(true)
	l.tick(t.Context(), time.Now())
	_, _, f, _ := l.snapshot()
	got := decodeCells(t, f)
	want := make([]byte, 12)
	for i := range want {
		want[i] = connConnected
		if i%3 == 0 {
			want[i] = connDisconnected
		}
		if i%2 == 0 {
			want[i] |= [...]byte{jobRunning, jobCompleted, jobCompleted, jobFailed}[i/2%4] << 2
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("cells %v, want %v", got, want)
	}
	if f.counts["connected"] != 8 || f.counts["disconnected"] != 4 || f.counts["job:failed"] != 1 || f.counts["job:running"] != 2 {
		t.Errorf("counts %v", f.counts)
	}
	v := f.version
	l.wantFleet.Store(true)
	l.tick(t.Context(), time.Now())
	if _, _, f, _ := l.snapshot(); f.version != v {
		t.Errorf("an unchanged fleet got a new version %d (was %d)", f.version, v)
	}
}

// TestStreamsEndWithRun checks that an open event stream ends when Run
// does, and that Run waits for its handler.
func TestStreamsEndWithRun(t *testing.T) {
	d, j := fleetFixture(10)
	c, err := New(Config{Hostname: "h", Policies: []Policy{{Name: "p", Keys: [][]byte{[]byte("k")}, Read: true}}, Devices: d, Jobs: j, Counters: fakeCounters{}, Rate: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()
	srv := httptest.NewTLSServer(c.Handler())
	defer srv.Close()
	rec := httptest.NewRecorder()
	c.auth.start(rec, "p", false, time.Now())
	req, _ := http.NewRequest("GET", srv.URL+"/console/api/events", nil)
	req.Header.Set("Cookie", rec.Header().Get("Set-Cookie"))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	var got strings.Builder
	for !strings.Contains(got.String(), "event: cells") {
		n, err := resp.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("stream ended before the grid: %v; got %q", err, got.String())
		}
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break // the handler returned: the response ended
		}
	}
	if n := c.live.watchers.Load(); n != 0 {
		t.Errorf("%d watchers after Run", n)
	}
}

// BenchmarkFleetTick measures one sample with the grid rebuilt, for a
// 100k-device fleet with a job over half of it, and reports the size of
// the grid message.
func BenchmarkFleetTick(b *testing.B) {
	d, j := fleetFixture(100_000)
	l := newLive(d, j, fakeCounters{})
	l.watchers.Add(1)
	for b.Loop() {
		l.wantFleet.Store(true)
		l.tick(context.Background(), time.Now())
	}
	_, _, f, _ := l.snapshot()
	b.ReportMetric(float64(len(f.cells)), "grid-bytes")
	msg, _, _, _ := l.snapshot()
	b.ReportMetric(float64(len(msg)), "live-bytes")
}

// BenchmarkFleetTickUniform is BenchmarkFleetTick for a fleet that is all
// online with no job: the usual sight, a few bytes of grid.
func BenchmarkFleetTickUniform(b *testing.B) {
	d := newFakeDevices(100_000, func(int) bool { return true })
	l := newLive(d, &fakeJobs{}, fakeCounters{})
	l.watchers.Add(1)
	for b.Loop() {
		l.wantFleet.Store(true)
		l.tick(context.Background(), time.Now())
	}
	_, _, f, _ := l.snapshot()
	b.ReportMetric(float64(len(f.cells)), "grid-bytes")
}
