package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// shardProc is one shard process, run with the environment a Kubernetes
// Indexed Job gives its pods.
type shardProc struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	code int
}

func startShard(t *testing.T, ep hubjobs.Endpoints, index, shards int, report string) *shardProc {
	t.Helper()
	p := &shardProc{done: make(chan struct{})}
	p.cmd = exec.Command(binary, "run", "testdata/shards-e2e.yaml", "--shard", "auto", "--no-live",
		"--hub-url", "https://"+ep.HTTPSAddr, "--mqtt-url", "ssl://"+ep.MQTTAddr, "--ca", ep.CAFile,
		"--heartbeat-timeout", "3s", "--barrier-timeout", "1m", "--report", report, "--log-level", "warn")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, "JOB_COMPLETION_INDEX="+strconv.Itoa(index), "FLEETSIM_SHARDS="+strconv.Itoa(shards),
		"FLEETSIM_HUB="+ep.ServiceConnectionString)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait returns the shard's exit code and output once it has ended.
func (p *shardProc) wait(t *testing.T) (int, string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("shard %v did not end within 3 minutes", p.cmd.Env[len(p.cmd.Env)-3])
	}
	return p.code, p.out.String()
}

func readShardReport(t *testing.T, dir string) *runner.Report {
	t.Helper()
	r, err := readReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBinaryShardsMeetOnTheHub runs three shard processes against a
// fleetsim serve process: a late shard that the barrier waits for, and a
// re-run on the same hub in which one shard is killed while its devices are
// in a job. The reports are merged into one verdict.
func TestBinaryShardsMeetOnTheHub(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a hub and three shard processes")
	}
	data := t.TempDir()
	startServe(t, data, "--max-in-flight", "500")
	var ep hubjobs.Endpoints
	b, err := os.ReadFile(filepath.Join(data, "connection.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ep); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	dir := func(run string, i int) string { return filepath.Join(out, run, "shard-"+strconv.Itoa(i)) }

	var firstJob string
	t.Run("a late shard is waited for", func(t *testing.T) {
		var procs [3]*shardProc
		procs[0] = startShard(t, ep, 0, 3, dir("a", 1))
		procs[1] = startShard(t, ep, 1, 3, dir("a", 2))
		// The third shard comes once the first two have joined the run.
		testkit.Eventually(t, time.Minute, func() bool {
			var tw struct {
				Tags struct {
					Fleetsim struct {
						M map[string]struct{ Ready bool }
					}
				}
			}
			code, stdout, _ := fleetsim(t, t.TempDir(), "twin", "get", "fleetsim-run-shards-e2e-5", "-o", "json", "--data", data)
			if code != 0 || json.Unmarshal([]byte(stdout), &tw) != nil {
				return false
			}
			ready := 0
			for _, m := range tw.Tags.Fleetsim.M {
				if m.Ready {
					ready++
				}
			}
			return ready >= 2
		}, "shards 1 and 2 ready")
		procs[2] = startShard(t, ep, 2, 3, dir("a", 3))
		for i, p := range procs {
			if code, o := p.wait(t); code != 0 {
				t.Fatalf("shard %d: exit %d\n%s", i+1, code, o)
			}
		}
		r1 := readShardReport(t, dir("a", 1))
		if r1.Run == nil || len(r1.Run.MissingAtStart) != 0 || len(r1.Jobs) != 1 || r1.Jobs[0].DeviceCount != 300 {
			t.Fatalf("shard 1: run %+v, jobs %+v", r1.Run, r1.Jobs)
		}
		if r1.Hub == nil || !r1.Hub.Known || r1.Hub.MaxInFlight != 500 {
			t.Errorf("hub settings %+v, want known with 500 in flight", r1.Hub)
		}
		firstJob = r1.Jobs[0].JobID
		code, stdout, stderr := fleetsim(t, t.TempDir(), "report", "merge", dir("a", 1), dir("a", 2), dir("a", 3), "--out", filepath.Join(out, "a", "merged"))
		if code != 0 {
			t.Fatalf("merge: exit %d\n%s\n%s", code, stdout, stderr)
		}
		m := readShardReport(t, filepath.Join(out, "a", "merged"))
		if m.Devices != 300 || len(m.Shards) != 3 || len(m.Jobs) != 1 || m.Jobs[0].Succeeded != 300 || !m.Passed {
			t.Errorf("merged: %d devices, shards %+v, jobs %+v, passed %v", m.Devices, m.Shards, m.Jobs, m.Passed)
		}
	})

	t.Run("a re-run with a killed shard", func(t *testing.T) {
		var procs [3]*shardProc
		for i := range procs {
			procs[i] = startShard(t, ep, i, 3, dir("b", i+1))
		}
		// Kill shard 3 once the run's job exists (it starts 4 s later).
		testkit.Eventually(t, time.Minute, func() bool {
			code, stdout, _ := fleetsim(t, t.TempDir(), "jobs", "list", "-o", "json", "--data", data)
			return code == 0 && strings.Count(stdout, `"jobId"`) >= 2
		}, "the re-run's job")
		if err := procs[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, p := range procs[:2] {
			wg.Go(func() { p.wait(t) })
		}
		wg.Wait()
		for i, p := range procs[:2] {
			code, o := p.wait(t)
			if code != 1 {
				t.Errorf("shard %d: exit %d, want 1 (the job failed on shard 3's devices)\n%s", i+1, code, o)
			}
			r := readShardReport(t, dir("b", i+1))
			if r.Run == nil || r.Run.Epoch < 2 || len(r.Run.Lost) != 1 || r.Run.Lost[0].Shard != 3 {
				t.Errorf("shard %d: run %+v, want shard 3 lost in a later epoch", i+1, r.Run)
			}
			if len(r.Jobs) != 1 || r.Jobs[0].JobID == firstJob {
				t.Errorf("shard %d: jobs %+v, want one job other than the first run's %s", i+1, r.Jobs, firstJob)
			}
			if !strings.Contains(o, "shard 3/3 stopped heartbeating") {
				t.Errorf("shard %d's report does not name shard 3:\n%s", i+1, o)
			}
		}
		code, stdout, _ := fleetsim(t, t.TempDir(), "report", "merge", dir("b", 1), dir("b", 2), "--out", filepath.Join(out, "b", "merged"))
		if code != 1 || !strings.Contains(stdout, "no report of shard 3") {
			t.Errorf("merge without shard 3: exit %d\n%s", code, stdout)
		}
	})
}
