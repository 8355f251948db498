package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

var jobColumns = []column{
	{"JOB ID", "jobId"}, {"TYPE", "type"}, {"STATUS", "status"},
	{"DEVICES", "deviceJobStatistics.deviceCount"}, {"SUCCEEDED", "deviceJobStatistics.succeededCount"},
	{"FAILED", "deviceJobStatistics.failedCount"}, {"RUNNING", "deviceJobStatistics.runningCount"},
	{"PENDING", "deviceJobStatistics.pendingCount"}, {"START", "startTime"}, {"END", "endTime"},
}

var jobDetail = []column{
	{"job", "jobId"}, {"type", "type"}, {"status", "status"}, {"failure reason", "failureReason"},
	{"status message", "statusMessage"}, {"query condition", "queryCondition"},
	{"method", "cloudToDeviceMethod.methodName"}, {"payload", "cloudToDeviceMethod.payload"},
	{"twin patch", "updateTwin"}, {"created", "createdTime"}, {"start", "startTime"}, {"end", "endTime"},
	{"max execution (s)", "maxExecutionTimeInSeconds"}, {"devices", "deviceJobStatistics.deviceCount"},
	{"succeeded", "deviceJobStatistics.succeededCount"}, {"failed", "deviceJobStatistics.failedCount"},
	{"running", "deviceJobStatistics.runningCount"}, {"pending", "deviceJobStatistics.pendingCount"},
}

func jobTable(w io.Writer, raw json.RawMessage) error {
	m, err := object(raw)
	if err != nil {
		return err
	}
	return keyValues(w, m, jobDetail)
}

func jobsCommand() *command {
	return &command{
		name:    "jobs",
		summary: "create, get, list and cancel jobs on a running hub",
		help: `Manages IoT Hub Jobs v2 on a running hub: scheduled direct methods and twin
updates over the devices a query condition selects.`,
		examples: []string{
			`fleetsim jobs create --method reboot --query "tags.ring = 'canary'"`,
			"fleetsim jobs list --status running",
			"fleetsim jobs get reboot-1 -o json",
			"fleetsim jobs cancel reboot-1",
		},
		subs: []*command{jobsCreate(), jobsGet(), jobsList(), jobsCancel()},
	}
}

func jobsCreate() *command {
	return &command{
		name: "create", args: "[JOB-ID]", summary: "schedule a direct-method or twin-update job",
		help: `Schedules a job. With --method it invokes that direct method on every device
the query condition selects; with --desired, --tags or --patch it applies a
twin patch to them. JOB-ID defaults to a generated one. With --wait the
command polls the job until it ends and fails when the job failed.`,
		examples: []string{
			`fleetsim jobs create reboot-1 --method reboot --payload '{"delay":5}'`,
			`fleetsim jobs create --desired '{"fw":"2.0.0"}' --query "tags.ring = 'canary'" --wait`,
			`fleetsim jobs create --method ping --start +1m --max-time 10m`,
		},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			var method, payload, query, start, desired, tags, patch string
			var maxTime, respTimeout, connTimeout time.Duration
			var wait bool
			f.fs.StringVar(&method, "method", "", "direct method `NAME` to invoke (a method job)")
			f.fs.StringVar(&payload, "payload", "null", "method payload, `JSON`")
			f.fs.StringVar(&desired, "desired", "", "desired properties to set, a `JSON` object (a twin job)")
			f.fs.StringVar(&tags, "tags", "", "tags to set, a `JSON` object (a twin job)")
			f.fs.StringVar(&patch, "patch", "", "a whole twin patch, `JSON` {\"tags\":...,\"properties\":{\"desired\":...}}")
			f.fs.StringVar(&query, "query", "*", "query `CONDITION` selecting devices (a WHERE clause; * is all)")
			f.fs.StringVar(&start, "start", "", "start `TIME`: RFC 3339, or +DURATION from now (default now)")
			f.fs.DurationVar(&maxTime, "max-time", time.Hour, "maximum run `DURATION` of the job")
			f.fs.DurationVar(&respTimeout, "response-timeout", 30*time.Second, "`DURATION` each device has to answer the method")
			f.fs.DurationVar(&connTimeout, "connect-timeout", 0, "`DURATION` to wait for an offline device to connect")
			f.fs.BoolVar(&wait, "wait", false, "wait for the job to end; exit 1 if it failed")
			f.cmdLineOnly("method", "payload", "desired", "tags", "patch", "query", "start", "wait")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) > 1 {
					return usagef(f.name, "want at most one JOB-ID, got %d arguments", len(args))
				}
				req := jobRequest{QueryCondition: query, MaxExecutionTimeInSeconds: int64(maxTime / time.Second)}
				if len(args) == 1 {
					req.JobID = args[0]
				} else {
					req.JobID = "job-" + time.Now().UTC().Format("20060102-150405")
				}
				var err error
				if req.StartTime, err = parseStart(start, time.Now()); err != nil {
					return usagef(f.name, "--start: %v", err)
				}
				twin := desired != "" || tags != "" || patch != ""
				switch {
				case method != "" && twin:
					return usagef(f.name, "--method makes a method job; --desired, --tags and --patch a twin job: choose one")
				case method != "":
					if !json.Valid([]byte(payload)) {
						return usagef(f.name, "--payload is not valid JSON")
					}
					req.Type = "scheduleDeviceMethod"
					req.CloudToDeviceMethod = &methodRequest{MethodName: method, Payload: json.RawMessage(payload),
						ResponseTimeoutInSeconds: int(respTimeout / time.Second), ConnectTimeoutInSeconds: int(connTimeout / time.Second)}
				case twin:
					p, err := twinPatch(patch, desired, tags)
					if err != nil {
						return usagef(f.name, "%v", err)
					}
					req.Type = "scheduleUpdateTwin"
					req.UpdateTwin = p
				default:
					return usagef(f.name, "say what the job does: --method NAME, or --desired/--tags/--patch")
				}
				hc, _, err := a.client(f, c)
				if err != nil {
					return err
				}
				cctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				raw, err := hc.CreateJob(cctx, req)
				if err != nil {
					return hubError(err, "create job "+req.JobID)
				}
				if !wait {
					return emit(a.stdout, c.output, raw, jobTable)
				}
				return a.waitJob(ctx, hc, c, req.JobID)
			}
		},
	}
}

// waitJob polls a job until it ends, printing a line when its counts change.
func (a *app) waitJob(ctx context.Context, hc hubClient, c *clientFlags, id string) error {
	last := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		raw, err := hc.GetJob(cctx, id)
		cancel()
		if err != nil {
			return hubError(err, "get job "+id)
		}
		m, err := object(raw)
		if err != nil {
			return err
		}
		status := field(m, "status")
		line := fmt.Sprintf("%s %s: %s of %s devices done (%s succeeded, %s failed)", id, status,
			sum(field(m, "deviceJobStatistics.succeededCount"), field(m, "deviceJobStatistics.failedCount")),
			orZero(field(m, "deviceJobStatistics.deviceCount")), orZero(field(m, "deviceJobStatistics.succeededCount")),
			orZero(field(m, "deviceJobStatistics.failedCount")))
		if line != last && c.output != "json" {
			fmt.Fprintln(a.stderr, line)
			last = line
		}
		switch status {
		case "completed", "failed", "cancelled":
			if err := emit(a.stdout, c.output, raw, jobTable); err != nil {
				return err
			}
			if status != "completed" {
				return &silentError{code: exitFail, msg: fmt.Sprintf("job %s %s", id, status)}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for job %s: %w", id, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func sum(a, b string) string {
	var x, y int
	fmt.Sscan(a, &x)
	fmt.Sscan(b, &y)
	return fmt.Sprint(x + y)
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// parseStart parses --start: empty is now, +DURATION is relative to now.
func parseStart(s string, now time.Time) (time.Time, error) {
	if s == "" || s == "now" {
		return now.UTC(), nil
	}
	if d, ok := strings.CutPrefix(s, "+"); ok {
		dur, err := time.ParseDuration(d)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: want +DURATION such as +30s", s)
		}
		return now.Add(dur).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-01-02T15:04:05Z) or +DURATION", s)
	}
	return t.UTC(), nil
}

// twinPatch builds a twin job's patch (etag "*", a force update).
func twinPatch(patch, desired, tags string) (json.RawMessage, error) {
	p := map[string]any{}
	if patch != "" {
		if err := json.Unmarshal([]byte(patch), &p); err != nil {
			return nil, fmt.Errorf("--patch: want a JSON object: %w", err)
		}
	}
	if desired != "" {
		var d map[string]any
		if err := json.Unmarshal([]byte(desired), &d); err != nil {
			return nil, fmt.Errorf("--desired: want a JSON object: %w", err)
		}
		props, _ := p["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
		}
		props["desired"] = d
		p["properties"] = props
	}
	if tags != "" {
		var t map[string]any
		if err := json.Unmarshal([]byte(tags), &t); err != nil {
			return nil, fmt.Errorf("--tags: want a JSON object: %w", err)
		}
		p["tags"] = t
	}
	p["etag"] = "*"
	b, err := json.Marshal(p)
	if err != nil {
		return nil, errors.New("twin patch: cannot encode")
	}
	return b, nil
}

func jobsGet() *command {
	return &command{
		name: "get", args: "JOB-ID", summary: "show a job and its statistics",
		help:     "Shows a job: its request, status and device statistics.",
		examples: []string{"fleetsim jobs get reboot-1", "fleetsim jobs get reboot-1 -o json"},
		setup: oneIDCommand("JOB-ID", func(ctx context.Context, hc hubClient, id string) (json.RawMessage, error) {
			return hc.GetJob(ctx, id)
		}, "get job", jobTable),
	}
}

func jobsCancel() *command {
	return &command{
		name: "cancel", args: "JOB-ID", summary: "cancel a job",
		help: `Cancels a job: no device is called any more, and devices not yet reached
are canceled. Calls already in flight finish and are recorded; until they
are, the job reads running, then cancelled.`,
		examples: []string{"fleetsim jobs cancel reboot-1"},
		setup: oneIDCommand("JOB-ID", func(ctx context.Context, hc hubClient, id string) (json.RawMessage, error) {
			return hc.CancelJob(ctx, id)
		}, "cancel job", jobTable),
	}
}

func jobsList() *command {
	return &command{
		name: "list", summary: "list jobs",
		help:     "Lists the hub's jobs, optionally of one type or status.",
		examples: []string{"fleetsim jobs list", "fleetsim jobs list --type scheduleDeviceMethod --status completed -o json"},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			var jobType, status string
			f.fs.StringVar(&jobType, "type", "", "only jobs of `TYPE`: scheduleDeviceMethod or scheduleUpdateTwin")
			f.fs.StringVar(&status, "status", "", "only jobs in `STATUS`: queued, scheduled, running, completed, failed, cancelled")
			f.cmdLineOnly("type", "status")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) > 0 {
					return usagef(f.name, "takes no arguments, got %q", args[0])
				}
				hc, _, err := a.client(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				raw, err := hc.ListJobs(ctx, jobType, status)
				if err != nil {
					return hubError(err, "list jobs")
				}
				return emit(a.stdout, c.output, raw, func(w io.Writer, raw json.RawMessage) error {
					items, err := objects(raw)
					if err != nil {
						return err
					}
					return tableOf(w, items, jobColumns, "No jobs.")
				})
			}
		},
	}
}

// oneIDCommand is the action of a client command that takes one id and shows
// the hub's answer.
func oneIDCommand(argName string, call func(context.Context, hubClient, string) (json.RawMessage, error), what string, table func(io.Writer, json.RawMessage) error) func(f *flagSet) action {
	return func(f *flagSet) action {
		c := addClientFlags(f)
		return func(ctx context.Context, a *app, args []string) error {
			if len(args) != 1 {
				return usagef(f.name, "want one %s", argName)
			}
			hc, _, err := a.client(f, c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			raw, err := call(ctx, hc, args[0])
			if err != nil {
				return hubError(err, what+" "+args[0])
			}
			return emit(a.stdout, c.output, raw, table)
		}
	}
}
