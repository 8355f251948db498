package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// writeSettleText says how the run ended and lists the report's warnings.
func writeSettleText(w io.Writer, r *runner.Report) {
	if r.Settle.Note != "" {
		fmt.Fprintf(w, "Run %s\n", r.Settle.Note)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", s)
	}
}

// writeDeviceSideText writes what the devices did, measured at the
// devices, under indent.
func writeDeviceSideText(w io.Writer, indent string, ds *runner.DeviceSide) {
	if ds == nil {
		return
	}
	if a := ds.TwinAcks; a != nil {
		fmt.Fprintf(w, "%sacknowledgements: %d accepted by the hub, %d failed; latency p50 %s, p99 %s, max %s\n",
			indent, a.Acknowledged, a.Failed, fmtMs(a.LatencyMs.P50), fmtMs(a.LatencyMs.P99), fmtMs(a.LatencyMs.Max))
	}
	if f := ds.Firmware; f != nil {
		fmt.Fprintf(w, "%sfirmware: %d updated, %d failed, %d rolled back; time to the new version p50 %s, p99 %s\n",
			indent, f.Updated, f.Failed, f.RolledBack, fmtMs(f.TimeToVersionMs.P50), fmtMs(f.TimeToVersionMs.P99))
		var parts []string
		for _, p := range f.Phases {
			parts = append(parts, fmt.Sprintf("%s %d ok / %d failed", p.Phase, p.Succeeded, p.Failed))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s  phases: %s\n", indent, strings.Join(parts, "; "))
		}
	}
	if rb := ds.Reboots; rb != nil {
		fmt.Fprintf(w, "%sreboots: %d back online; offline p50 %s, p99 %s, max %s\n",
			indent, rb.Count, fmtMs(rb.OfflineMs.P50), fmtMs(rb.OfflineMs.P99), fmtMs(rb.OfflineMs.Max))
	}
}

// fmtMs formats milliseconds for people.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1000:
		return fmt.Sprintf("%.0f ms", v)
	case v < 60000:
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.1f min", v/60000)
}
