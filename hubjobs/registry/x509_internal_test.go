package registry

import "testing"

// TestAppendRecordX509: the stored form of an X.509 device's record decodes
// as encoding/json's does.
func TestAppendRecordX509(t *testing.T) {
	for _, rec := range []record{
		{ID: "self", Auth: AuthenticationSelfSigned, Thumb1: "AB", Thumb2: "CD", Desired: map[string]any{}, Reported: map[string]any{}, DesiredMeta: &meta{}, ReportedMeta: &meta{}},
		{ID: "self2", Auth: AuthenticationSelfSigned, Thumb2: "CD", Desired: map[string]any{}, Reported: map[string]any{}, DesiredMeta: &meta{}, ReportedMeta: &meta{}},
		{ID: "ca", Auth: AuthenticationCA, Desired: map[string]any{}, Reported: map[string]any{}, DesiredMeta: &meta{}, ReportedMeta: &meta{}},
	} {
		sameDecoded(t, &rec)
	}
}
