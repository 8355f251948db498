package registry_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/regstore"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

const crashEnv = "FLEETSIM_REGISTRY_CRASH_CHILD"

// ackLink is the crash child's broker: it prints every 204 a device gets,
// i.e. every reported patch the registry acknowledged.
type ackLink struct{ out *lockedWriter }

func (l ackLink) Deliver(id, topic string, _ []byte) error {
	if _, _, v, err := iothub.ParseTwinResponseTopic(topic); err == nil && strings.Contains(topic, "/204/") {
		l.out.println("REPORTED", id, strconv.FormatInt(v, 10))
	}
	return nil
}
func (ackLink) Disconnect(string) {}

type lockedWriter struct{ mu sync.Mutex }

func (w *lockedWriter) println(fields ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintln(os.Stdout, strings.Join(fields, " "))
}

// crashChild writes devices, twin patches and reported properties from
// several goroutines and prints each write once it is acknowledged, until
// the parent kills it.
func crashChild(path string) {
	st, err := regstore.Open(path)
	if err != nil {
		panic(err)
	}
	out := &lockedWriter{}
	r, err := registry.New(registry.Options{Store: st, Link: ackLink{out}})
	if err != nil {
		panic(err)
	}
	go func() { _ = r.Run(context.Background()) }() // the parent kills this process
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 100000 {
				id := fmt.Sprintf("w%d-%06d", w, i)
				if _, err := r.CreateDevice(ctx, registry.Device{DeviceID: id}); err != nil {
					panic(err)
				}
				out.println("DEVICE", id)
				if _, err := r.PatchTwin(ctx, id, []byte(fmt.Sprintf(`{"tags":{"n":%d}}`, i)), "*"); err != nil {
					panic(err)
				}
				out.println("TAGS", id, strconv.Itoa(i))
				publish(r, id, iothub.TwinReportedTopic("1"), `{"seen":true}`)
			}
		})
	}
	wg.Wait()
}

// TestCrashLosesNothingAcknowledged kills a writer with SIGKILL mid-stream
// and checks that every write it acknowledged is in the reopened store.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLosesNothingAcknowledged$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	devices := map[string]bool{}
	tags := map[string]int{}
	reported := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	const enough = 600
	for len(tags) < enough && sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "DEVICE":
			devices[f[1]] = true
		case len(f) == 3 && f[0] == "TAGS":
			tags[f[1]], _ = strconv.Atoi(f[2])
		case len(f) == 3 && f[0] == "REPORTED":
			reported[f[1]] = true
		}
	}
	// Kill mid-stream: the child is still writing.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(tags) < enough {
		t.Fatalf("the child stopped after %d acknowledged patches", len(tags))
	}

	st, err := regstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := registry.New(registry.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for id := range devices {
		if _, err := r.GetDevice(id); err != nil {
			t.Fatalf("acknowledged device %s lost after kill -9: %v", id, err)
		}
	}
	for id, n := range tags {
		tw, err := r.GetTwin(id)
		if err != nil || tw.Tags["n"] != float64(n) {
			t.Fatalf("acknowledged tags of %s lost after kill -9: %v %v", id, tw.Tags, err)
		}
	}
	for id := range reported {
		if tw, _ := r.GetTwin(id); tw.Properties.Reported["seen"] != true {
			t.Fatalf("acknowledged reported properties of %s lost after kill -9", id)
		}
	}
	t.Logf("acknowledged before SIGKILL: %d devices, %d tag patches, %d reported patches; %d devices stored",
		len(devices), len(tags), len(reported), r.Statistics().TotalDeviceCount)
}
