package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
)

// TestSDK runs every *.test.js file against one hub. It fails, never skips,
// when node or the pinned SDKs are missing: run `make sdk-deps` first.
func TestSDK(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: the SDK compatibility suite needs Node 18+ (see README)")
	}
	if _, err := os.Stat("node_modules/azure-iothub"); err != nil {
		t.Fatal("the pinned Node SDKs are not installed: run `make sdk-deps` (npm ci in sdktest/)")
	}
	httpsAddr := os.Getenv("FLEETSIM_SDKTEST_HTTPS_ADDR")
	if httpsAddr == "" {
		httpsAddr = "127.0.0.1:443"
	}
	if ln, err := net.Listen("tcp", httpsAddr); err != nil {
		t.Fatalf("the Node service SDK always connects to port 443, and %s cannot be bound here (%v): run as root or grant CAP_NET_BIND_SERVICE", httpsAddr, err)
	} else {
		ln.Close()
	}

	// The device SDK's X.509 client ignores GatewayHostName and always
	// connects to port 8883, so MQTT over TLS is served there.
	mqttAddr := os.Getenv("FLEETSIM_SDKTEST_MQTT_ADDR")
	if mqttAddr == "" {
		mqttAddr = "127.0.0.1:8883"
	}
	if ln, err := net.Listen("tcp", mqttAddr); err != nil {
		t.Fatalf("the Node device SDK's X.509 client always connects to port 8883, and %s cannot be bound here (%v)", mqttAddr, err)
	} else {
		ln.Close()
	}

	ctx, cancel := context.WithCancel(context.Background())
	dataDir := t.TempDir()
	x509Dir := makeX509Fixtures(t, dataDir)
	stack, err := hubjobs.New(hubjobs.Config{
		DataDir:   dataDir,
		Hostname:  "localhost",
		HTTPSAddr: httpsAddr,
		MQTTAddr:  mqttAddr,
		Pacing:    "unlimited",
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- stack.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("stack.Run: %v", err)
		}
	}()
	select {
	case <-stack.Ready():
	case err := <-done:
		t.Fatalf("stack stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("stack not ready after 30s")
	}
	ep := stack.Endpoints()
	// The device and service policies, for tokens signed with a policy key.
	var policies []restapi.Policy
	if b, err := os.ReadFile(filepath.Join(dataDir, "policies.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &policies); err != nil {
		t.Fatal(err)
	}
	policyCS := map[string]string{}
	for _, p := range policies {
		policyCS[p.Name] = restapi.ServiceConnectionString(ep.HostName, p)
	}

	files, _ := filepath.Glob("*.test.js")
	if len(files) == 0 {
		t.Fatal("no *.test.js files")
	}
	run := exec.CommandContext(ctx, "node", append([]string{"--test", "--test-concurrency=1", "--test-reporter=spec"}, files...)...)
	run.Env = append(os.Environ(),
		"FLEETSIM_SERVICE_CS="+ep.ServiceConnectionString,
		"FLEETSIM_DEVICE_POLICY_CS="+policyCS["device"],
		"FLEETSIM_SERVICE_POLICY_CS="+policyCS["service"],
		"FLEETSIM_HOSTNAME="+ep.HostName,
		"FLEETSIM_MQTT_ADDR="+strings.Replace(ep.MQTTAddr, "127.0.0.1", "localhost", 1),
		"NODE_EXTRA_CA_CERTS="+ep.CAFile,
		"FLEETSIM_X509_DIR="+x509Dir,
	)
	out, err := run.CombinedOutput()
	t.Logf("node --test output:\n%s", out)
	if err != nil {
		t.Fatalf("SDK compatibility suite failed: %v", err)
	}
}
