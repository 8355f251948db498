package kubernetes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// TestIndexedJobContract runs the manifests as a cluster would, with
// processes on loopback instead of pods: the hub with the StatefulSet's
// arguments and config file, given a CA and an owner key as the Secrets
// would mount them, and every pod of the fleet Job at once with the Job's
// arguments and environment plus the JOB_COMPLETION_INDEX Kubernetes adds.
// Only what a cluster provides is replaced: mount paths by directories,
// the Service's name by the hub's loopback ports (its certificate also
// names 127.0.0.1), and the 100k-device scenario by a small one. Every
// shard must pass and report its own shard.
func TestIndexedJobContract(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a hub and a fleet of processes")
	}
	bin := filepath.Join(t.TempDir(), "fleetsim")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/fleetsim").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	o := decodeAll(t)
	cfg := serveConfig(t, o)
	root := t.TempDir()
	// The Secrets, as their volumes mount them.
	mounts := map[string]string{"/etc/fleetsim/ca/": root + "/ca/", "/etc/fleetsim/service/": root + "/service/", "/etc/fleetsim/config/": root + "/config/"}
	local := func(p string) string {
		for from, to := range mounts {
			if rest, ok := strings.CutPrefix(p, from); ok {
				return to + rest
			}
		}
		return p
	}
	if _, err := tlsutil.EnsureCerts(root + "/ca"); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	b64 := base64.StdEncoding.EncodeToString(key)
	os.MkdirAll(root+"/service", 0o700)
	os.WriteFile(local(cfg["owner-key-file"]), []byte(b64+"\n"), 0o600)
	os.WriteFile(root+"/service/connection-string",
		[]byte("HostName="+cfg["hostname"]+";SharedAccessKeyName=iothubowner;SharedAccessKey="+b64+"\n"), 0o600)

	// The hub's config file with local paths and loopback ports.
	var conf strings.Builder
	conf.WriteString("serve:\n")
	for k, v := range cfg {
		switch k {
		case "data":
			v = root + "/data"
		case "https-addr", "mqtt-addr":
			v = "127.0.0.1:0"
		default:
			v = local(v)
		}
		fmt.Fprintf(&conf, "  %s: %q\n", k, v)
	}
	os.MkdirAll(root+"/config", 0o700)
	os.WriteFile(root+"/config/fleetsim.yaml", []byte(conf.String()), 0o600)
	hubArgs := o.statefulSets[0].Spec.Template.Spec.Containers[0].Args
	for i := range hubArgs {
		hubArgs[i] = local(hubArgs[i])
	}
	rest, mqtt := startHub(t, bin, hubArgs)

	job := o.jobs[0]
	c := job.Spec.Template.Spec.Containers[0]
	n := int(*job.Spec.Completions)
	args := func() []string {
		a := append([]string(nil), c.Args...)
		for i := range a {
			switch {
			case i > 0 && a[i-1] == "--hub-url":
				a[i] = "https://" + rest
			case i > 0 && a[i-1] == "--mqtt-url":
				a[i] = "ssl://" + mqtt
			case i == 1:
				a[i] = "testdata/shards.yaml"
			default:
				a[i] = local(a[i])
			}
		}
		return a
	}()
	type result struct {
		out  string
		err  error
		code int
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = append(podEnv(c.Env), "JOB_COMPLETION_INDEX="+strconv.Itoa(i), "PATH="+os.Getenv("PATH"), "HOME="+root)
			out, err := cmd.CombinedOutput()
			results[i] = result{string(out), err, cmd.ProcessState.ExitCode()}
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("pod %d: exit %d (%v)\n%s", i, r.code, r.err, r.out)
			continue
		}
		if want := fmt.Sprintf("shard %d/%d", i+1, n); !strings.Contains(r.out, want) || !strings.Contains(r.out, "PASS: ") {
			t.Errorf("pod %d: the report does not say %q and PASS:\n%s", i, want, r.out)
		}
		if strings.Contains(r.out, "warning: --hub") {
			t.Errorf("pod %d was warned of a secret on its command line", i)
		}
	}
}

// podEnv is the container's environment as KEY=value (plain values only).
func podEnv(env []corev1.EnvVar) []string {
	var out []string
	for _, e := range env {
		if e.ValueFrom == nil {
			out = append(out, e.Name+"="+e.Value)
		}
	}
	return out
}

// startHub runs `fleetsim ARGS...` (serve) until the test ends and returns
// the REST and MQTT addresses it prints when ready.
func startHub(t *testing.T, bin string, args []string) (rest, mqtt string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	found := make(chan [2]string, 1)
	w := &endpointWatcher{found: found}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-stopped:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			t.Error("the hub did not stop within a minute of SIGTERM")
		}
	})
	go func() { stopped <- cmd.Wait() }()
	select {
	case a := <-found:
		return a[0], a[1]
	case err := <-stopped:
		stopped <- err
		t.Fatalf("the hub exited: %v\n%s", err, stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("the hub did not print its endpoints within 2 minutes")
	}
	return "", ""
}

// endpointWatcher is the hub's stdout: it reads the REST and MQTT
// addresses from the lines the hub prints when ready, and sends them once.
type endpointWatcher struct {
	mu         sync.Mutex
	buf        []byte
	rest, mqtt string
	found      chan [2]string
}

var (
	restRE = regexp.MustCompile(`REST API:\s+https://(\S+)`)
	mqttRE = regexp.MustCompile(`MQTT over TLS:\s+(\S+)`)
)

// Write implements io.Writer.
func (w *endpointWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if x := restRE.FindStringSubmatch(line); x != nil {
			w.rest = x[1]
		}
		if x := mqttRE.FindStringSubmatch(line); x != nil {
			w.mqtt = x[1]
		}
		if w.rest != "" && w.mqtt != "" && w.found != nil {
			w.found <- [2]string{w.rest, w.mqtt}
			w.found = nil
		}
	}
}
