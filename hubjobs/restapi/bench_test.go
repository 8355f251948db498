package restapi_test

import (
	"context"
	"testing"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// BenchmarkInvokeMethod measures direct-method calls through the whole
// service path (HTTPS keep-alive, SAS check, JSON, registry, device link)
// with instant device answers, serially and from parallel clients.
func BenchmarkInvokeMethod(b *testing.B) {
	for _, bc := range []struct {
		name     string
		parallel bool
	}{{"serial", false}, {"parallel", true}} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, envOptions{})
			e.createDevices("bench")
			ctx := context.Background()
			req := iothub.MethodRequest{MethodName: "echo", Payload: []byte(`{"n":1}`)}
			b.ReportAllocs()
			b.ResetTimer()
			if bc.parallel {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := e.client.InvokeMethod(ctx, "bench", req); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for b.Loop() {
					if _, err := e.client.InvokeMethod(ctx, "bench", req); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}
