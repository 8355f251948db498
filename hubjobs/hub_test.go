package hubjobs_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// TestHubWithAGivenCAAndOwnerKey: a hub given a CA and an owner key (as
// from a Kubernetes Secret) is reached with a connection string made from
// that key, over TLS verified against that CA alone, on a host name of
// its own; a restart with another key takes it.
func TestHubWithAGivenCAAndOwnerKey(t *testing.T) {
	secrets := t.TempDir()
	ca, err := tlsutil.EnsureCerts(secrets)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const host = "fleetsim-hub.fleetsim.svc"
	for _, key := range []string{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="} {
		hub, err := hubjobs.New(hubjobs.Config{
			DataDir: dir, Hostname: host, HTTPSAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
			CACertFile: ca.CAFile, CAKeyFile: filepath.Join(secrets, "ca-key.pem"), OwnerKey: key,
		})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- hub.Run(ctx) }()
		select {
		case <-hub.Ready():
		case err := <-done:
			cancel()
			t.Fatalf("Run: %v", err)
		}
		ep := hub.Endpoints()
		cs := "HostName=" + host + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + key
		if ep.ServiceConnectionString != cs {
			t.Errorf("service connection string %q, want %q", ep.ServiceConnectionString, cs)
		}
		tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ca.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		tlsConf.ServerName = host
		c, err := restapi.NewClient(cs, restapi.ClientOptions{BaseURL: "https://" + ep.HTTPSAddr, TLSConfig: tlsConf})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeviceStatistics(ctx); err != nil {
			t.Errorf("with key %s: %v", key, err)
		}
		c.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}
