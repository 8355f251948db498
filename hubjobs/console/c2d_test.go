package console_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestSendC2DFromTheDevicePage: the device page's form queues a
// cloud-to-device message with its properties; bad input and an unknown
// device get their errors.
func TestSendC2DFromTheDevicePage(t *testing.T) {
	h := startHub(t)
	c := newClient(t, h)
	resp, _ := c.do("GET", strings.TrimPrefix(h.Endpoints().ConsoleLoginURL, c.base), "", nil)
	ck := sessionCookie(t, resp)
	cookie := ck.Name + "=" + ck.Value
	_, body := c.do("GET", "/console/api/session", "", map[string]string{"Cookie": cookie})
	var sess struct{ CSRF string }
	if err := json.Unmarshal([]byte(body), &sess); err != nil {
		t.Fatal(err)
	}
	hdr := map[string]string{"Cookie": cookie, "Origin": c.base, "X-CSRF-Token": sess.CSRF, "Content-Type": "application/json"}
	tests := []struct {
		name, device, body string
		want               int
	}{
		{"sent", "dev-1", `{"data":"hello","messageId":"m-1","properties":{"kind":"command"},"ttlSeconds":60}`, http.StatusCreated},
		{"unknown device", "nope", `{"data":"x"}`, http.StatusNotFound},
		{"unknown field", "dev-1", `{"body":"x"}`, http.StatusBadRequest},
		{"reserved property", "dev-1", `{"properties":{"$.mid":"x"}}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		resp, body := c.do("POST", "/console/api/devices/"+tt.device+"/messages", tt.body, hdr)
		if resp.StatusCode != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, resp.StatusCode, body, tt.want)
		}
	}
	st, err := h.C2D.Status("dev-1")
	if err != nil || len(st.Messages) != 1 || st.Messages[0].MessageID != "m-1" || st.Messages[0].Properties["kind"] != "command" {
		t.Fatalf("queue %+v, %v", st, err)
	}
}
