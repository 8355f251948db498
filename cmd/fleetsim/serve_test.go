package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServeCommand(t *testing.T) {
	var out, errb bytes.Buffer
	var got serveOptions
	pprofOK := false
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
		open: func(name string) (scenario, error) { return fakeScenario{name}, nil },
		hub: func(ctx context.Context, o serveOptions) error {
			got = o
			o.Ready(endpoints{HostName: "localhost", ServiceConnectionString: "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0",
				CAFile: "/d/tls/ca.pem", HTTPSAddr: "[::]:8443", MQTTAddr: "[::]:8883"})
			// The pprof listener is up while the hub runs.
			line := out.String()[strings.Index(out.String(), "http://"):]
			url, _, _ := strings.Cut(line, "\n")
			if resp, err := http.Get(strings.TrimSpace(url)); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				pprofOK = resp.StatusCode == 200 && strings.Contains(string(b), "goroutine")
			}
			return fmt.Errorf("hub: %w", context.Canceled)
		}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as after SIGINT: the hub's context.Canceled is a clean stop
	code := a.main(ctx, []string{"serve", "--data", "/d", "--https-addr", ":9443", "--scenario", "quickstart", "--pacing", "S1", "--pprof", "127.0.0.1:0"})
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	if got.DataDir != "/d" || got.HTTPSAddr != ":9443" || got.MQTTAddr != ":8883" || got.Hostname != "localhost" || got.Pacing != "S1" || got.Scenario.Name() != "quickstart" {
		t.Errorf("serve options %+v", got)
	}
	for _, w := range []string{"service connection string:  HostName=localhost;SharedAccessKeyName=iothubowner", "CA certificate:", "/d/tls/ca.pem",
		"REST API:", "https://localhost:8443", "localhost:8883", "MQTT over TLS:", "/d/connection.json", "open files limit:", "fleetsim hub stopped"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	if !pprofOK {
		t.Errorf("pprof did not answer:\n%s", out.String())
	}
}

// TestServeKeepsAGivenKeyOutOfItsOutput: with --owner-key-file the key is
// not printed (a pod's log is read more widely than its Secret).
func TestServeKeepsAGivenKeyOutOfItsOutput(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "owner-key")
	os.WriteFile(keyFile, []byte("c2VjcmV0c2VjcmV0c2VjcmV0\n"), 0o600)
	var out, errb bytes.Buffer
	var got serveOptions
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
		hub: func(ctx context.Context, o serveOptions) error {
			got = o
			o.Ready(endpoints{HostName: "h", ServiceConnectionString: "HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0c2VjcmV0c2VjcmV0"})
			return nil
		}}
	if code := a.main(context.Background(), []string{"serve", "--owner-key-file", keyFile}); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	if got.OwnerKey != "c2VjcmV0c2VjcmV0c2VjcmV0" {
		t.Errorf("owner key %q", got.OwnerKey)
	}
	if strings.Contains(out.String(), "c2VjcmV0") || !strings.Contains(out.String(), "SharedAccessKey=<the key in "+keyFile+">") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestServeHubFails(t *testing.T) {
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
		hub: func(ctx context.Context, o serveOptions) error {
			return errors.New("REST listener: listen tcp :8443: bind: address already in use")
		}}
	code := a.main(context.Background(), []string{"serve"})
	if code != exitFail || errb.String() != "fleetsim: serve: REST listener: listen tcp :8443: bind: address already in use\n" {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
