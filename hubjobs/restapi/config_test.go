package restapi_test

import (
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
)

// TestNewNeedsEveryDeviceHandlerGroup: a server is not built with a device
// handler group missing, rather than answering its endpoints with a panic.
func TestNewNeedsEveryDeviceHandlerGroup(t *testing.T) {
	reg, err := registry.New(registry.Options{Hostname: hubHost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	ps, err := restapi.DefaultPolicies()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		unset func(*restapi.Config)
	}{
		{"none", func(*restapi.Config) {}},
		{"Devices", func(c *restapi.Config) { c.Devices = nil }},
		{"Statistics", func(c *restapi.Config) { c.Statistics = nil }},
		{"Twins", func(c *restapi.Config) { c.Twins = nil }},
		{"Methods", func(c *restapi.Config) { c.Methods = nil }},
		{"Queries", func(c *restapi.Config) { c.Queries = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := restapi.Config{Hostname: hubHost, Policies: ps}
			serveRegistry(&cfg, reg)
			tc.unset(&cfg)
			_, err := restapi.New(cfg)
			if ok := tc.name == "none"; (err == nil) != ok {
				t.Fatalf("New with %s unset: %v", tc.name, err)
			}
		})
	}
}
