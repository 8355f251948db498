package events

import (
	"strconv"
	"testing"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// BenchmarkRecord measures recording a method answer, the event a method
// job's device operation adds, from many goroutines at once over 100k devices.
func BenchmarkRecord(b *testing.B) {
	for _, watchers := range []int{0, 1} {
		b.Run("watchers="+strconv.Itoa(watchers), func(b *testing.B) {
			s := New(Options{})
			for range watchers {
				sub := s.Subscribe(Filter{Devices: []string{"nobody"}})
				defer sub.Close()
			}
			ids := make([]string, 100000)
			for i := range ids {
				ids[i] = "device-" + strconv.Itoa(i)
			}
			payload := []byte(`{"status":"ok"}`)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					s.Published(ids[i%len(ids)], iothub.DeviceTopic{Kind: iothub.KindMethodResponse, RequestID: "1", Status: 200}, payload)
					i += 7
				}
			})
		})
	}
}
