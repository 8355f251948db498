package jobs_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// BenchmarkScheduledStart measures how late scheduled jobs start on the
// real clock: 200 jobs due 5 ms apart, each over 20 devices that answer at
// once, so that starts compete with running jobs and their store writes.
// Lateness is the stored Started time minus the requested startTime.
func BenchmarkScheduledStart(b *testing.B) {
	const n = 200
	for b.Loop() {
		f := newFleet(100)
		f.answer = func(context.Context, string) (iothub.MethodResult, error) {
			return iothub.MethodResult{Status: 200}, nil
		}
		st := jobs.NewMemStore()
		e := start(b, config(f, st))
		first := time.Now().Add(50 * time.Millisecond)
		for i := range n {
			req := methodJob(fmt.Sprintf("at-%03d", i), "tags.floor = 0")
			at := first.Add(time.Duration(i) * 5 * time.Millisecond)
			req.StartTime = &at
			if _, err := e.Create(b.Context(), req); err != nil {
				b.Fatal(err)
			}
		}
		for i := range n {
			waitStatus(b, e, fmt.Sprintf("at-%03d", i), jobs.StatusCompleted)
		}
		if err := e.stop(); err != nil {
			b.Fatal(err)
		}
		var late []time.Duration
		if err := st.Load(func(s jobs.StoredJob) error {
			if s.Record.Status != jobs.StatusCompleted || s.Record.DeviceJobStatistics.SucceededCount != 20 {
				return fmt.Errorf("job %s: %s %+v", s.Record.JobID, s.Record.Status, s.Record.DeviceJobStatistics)
			}
			late = append(late, s.Record.Started.Sub(s.Record.StartTime))
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		slices.Sort(late)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(late[len(late)/2]), "late-p50-ms")
		b.ReportMetric(ms(late[len(late)*99/100]), "late-p99-ms")
		b.ReportMetric(ms(late[len(late)-1]), "late-max-ms")
		if late[0] < 0 {
			b.Fatalf("a job started %s early", -late[0])
		}
	}
}
