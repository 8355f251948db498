package console_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/internal/testkit"
)

// TestConnectionJSONHasConsoleURL checks that the hub writes the console's
// address to connection.json, and never its one-time login URL, which is a
// secret printed once.
func TestConnectionJSONHasConsoleURL(t *testing.T) {
	h := testkit.StartHub(t, testkit.HubOptions{Persistent: true})
	ep := h.Endpoints()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(ep.CAFile)), "connection.json"))
	if err != nil {
		t.Fatal(err)
	}
	var conn map[string]any
	if err := json.Unmarshal(b, &conn); err != nil {
		t.Fatal(err)
	}
	if conn["consoleUrl"] != ep.ConsoleURL || !strings.HasPrefix(ep.ConsoleURL, "https://") {
		t.Errorf("connection.json consoleUrl %v, want %q", conn["consoleUrl"], ep.ConsoleURL)
	}
	if strings.Contains(string(b), "token=") {
		t.Errorf("connection.json has a login token: %s", b)
	}
}
