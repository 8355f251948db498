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
	return startScenarioShard(t, "testdata/shards-e2e.yaml", ep, index, shards, report)
}

// startScenarioShard starts shard index (0-based, as JOB_COMPLETION_INDEX)
// of shards running scenario against the hub at ep.
func startScenarioShard(t *testing.T, scenario string, ep hubjobs.Endpoints, index, shards int, report string) *shardProc {
	t.Helper()
	p := &shardProc{done: make(chan struct{})}
	p.cmd = exec.Command(binary, "run", scenario, "--shard", "auto", "--no-live",
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

// readEndpoints reads the connection.json a served hub wrote in data.
func readEndpoints(t *testing.T, data string) hubjobs.Endpoints {
	t.Helper()
	var ep hubjobs.Endpoints
	b, err := os.ReadFile(filepath.Join(data, "connection.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ep); err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestBinaryShardsRideThroughAHubRestart kills the served hub with SIGKILL
// while a job runs over two shards' devices, and serves the same data
// directory again on the same addresses: the devices reconnect, the hub
// resumes the job, the shards' judging waits through the outage, and the
// merged verdict counts the job once with every device in it.
func TestBinaryShardsRideThroughAHubRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a hub, kills and restarts it under two shard processes")
	}
	const devices = 1000
	data := t.TempDir()
	serveArgs := []string{"--max-in-flight", "100"}
	hub := startServe(t, data, serveArgs...)
	ep := readEndpoints(t, data)
	out := t.TempDir()
	dir := func(i int) string { return filepath.Join(out, "shard-"+strconv.Itoa(i)) }
	var procs [2]*shardProc
	for i := range procs {
		procs[i] = startScenarioShard(t, "testdata/shards-restart.yaml", ep, i, len(procs), dir(i+1))
	}

	// Kill the hub once the job is well under way, not finished.
	var id string
	testkit.Eventually(t, 2*time.Minute, func() bool {
		var list []struct {
			JobID string `json:"jobId"`
			jobView
		}
		clientJSON(t, data, &list, "jobs", "list")
		if len(list) != 1 {
			return false
		}
		id = list[0].JobID
		return list[0].Stats.SucceededCount >= devices/5
	}, "a fifth of the job")
	var j jobView
	clientJSON(t, data, &j, "jobs", "get", id)
	hub.kill(t)
	if j.Status == "completed" || j.Stats.SucceededCount > devices*3/4 {
		t.Fatalf("killed the hub with the job at %s %+v; the test needs it in the middle", j.Status, j.Stats)
	}
	t.Logf("killed the hub with %d of %d devices done", j.Stats.SucceededCount, devices)
	// The hub stays away for longer than the shards' heartbeat timeout, as
	// a restarted pod would: no shard may take the others for gone.
	time.Sleep(5 * time.Second)

	startServe(t, data, append(serveArgs, "--https-addr", ep.HTTPSAddr, "--mqtt-addr", ep.MQTTAddr)...)
	for i, p := range procs {
		if code, o := p.wait(t); code != 0 {
			t.Errorf("shard %d: exit %d\n%s", i+1, code, o)
		}
	}
	clientJSON(t, data, &j, "jobs", "get", id)
	j.check(t)
	if s := j.Stats; j.Status != "completed" || s.DeviceCount != devices || s.SucceededCount != devices {
		t.Errorf("job %s after the restart: %s %+v", id, j.Status, s)
	}
	code, stdout, stderr := fleetsim(t, t.TempDir(), "report", "merge", dir(1), dir(2), "--out", filepath.Join(out, "merged"))
	if code != 0 {
		t.Fatalf("merge: exit %d\n%s\n%s", code, stdout, stderr)
	}
	m := readShardReport(t, filepath.Join(out, "merged"))
	if m.Devices != devices || len(m.Shards) != 2 || len(m.Jobs) != 1 || !m.Passed || m.Fleet.AllConnected <= 0 {
		t.Fatalf("merged: %d devices, fleet %+v, shards %+v, jobs %+v, passed %v", m.Devices, m.Fleet, m.Shards, m.Jobs, m.Passed)
	}
	mj := m.Jobs[0]
	if mj.JobID != id || mj.DeviceCount != devices || mj.Succeeded != devices || mj.Failed != 0 {
		t.Errorf("merged job %+v, want %s with %d devices succeeded", mj, id, devices)
	}
	for _, sh := range m.Shards {
		// Every device connected again after the restart.
		if sh.Devices != devices/2 || sh.ConnectedAtEnd != devices/2 || sh.Connects < int64(devices) || sh.NeverConnected != 0 {
			t.Errorf("merged shard %+v, want %d devices, all connected twice", sh, devices/2)
		}
	}
	for i := range procs {
		r := readShardReport(t, dir(i+1))
		if r.Run == nil || len(r.Run.Lost) != 0 || r.Run.Epoch != 1 {
			t.Errorf("shard %d: run %+v, want epoch 1 with no shard lost", i+1, r.Run)
		}
	}
}
