package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testApp runs the command in-process with env as its whole environment.
func testApp(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }}
	code = a.main(context.Background(), args)
	return code, out.String(), errb.String()
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	yamlCfg := write("fleetsim.yaml", `
log-level: debug
data: /from/config/top
serve:
  hostname: config.example
  https-addr: ":9443"
jobs:
  output: json
`)
	jsonCfg := write("fleetsim.json", `{"hostname": "json.example", "serve": {"mqtt-addr": ":1883", "pprof": "localhost:6060"}}`)

	tests := []struct {
		name string
		cmd  []string // command path
		args []string
		env  map[string]string
		want map[string]string // flag → value
	}{
		{"defaults", []string{"serve"}, nil, nil,
			map[string]string{"data": "./fleetsim-data", "hostname": "localhost", "https-addr": ":8443", "mqtt-addr": ":8883", "log-level": "info", "pprof": ""}},
		{"config file top level and section", []string{"serve"}, []string{"--config", yamlCfg}, nil,
			map[string]string{"data": "/from/config/top", "hostname": "config.example", "https-addr": ":9443", "log-level": "debug"}},
		{"config from FLEETSIM_CONFIG", []string{"serve"}, nil, map[string]string{"FLEETSIM_CONFIG": yamlCfg},
			map[string]string{"hostname": "config.example"}},
		{"--config wins over FLEETSIM_CONFIG", []string{"serve"}, []string{"--config", jsonCfg}, map[string]string{"FLEETSIM_CONFIG": yamlCfg},
			map[string]string{"hostname": "json.example", "mqtt-addr": ":1883", "pprof": "localhost:6060", "https-addr": ":8443"}},
		{"env wins over config", []string{"serve"}, []string{"--config", yamlCfg},
			map[string]string{"FLEETSIM_HOSTNAME": "env.example", "FLEETSIM_LOG_LEVEL": "warn"},
			map[string]string{"hostname": "env.example", "log-level": "warn", "https-addr": ":9443"}},
		{"flag wins over env and config", []string{"serve"}, []string{"--config", yamlCfg, "--hostname", "flag.example", "-https-addr=:1"},
			map[string]string{"FLEETSIM_HOSTNAME": "env.example", "FLEETSIM_HTTPS_ADDR": ":2"},
			map[string]string{"hostname": "flag.example", "https-addr": ":1"}},
		{"empty env is unset", []string{"serve"}, nil, map[string]string{"FLEETSIM_HOSTNAME": ""},
			map[string]string{"hostname": "localhost"}},
		{"section of another command does not apply", []string{"devices", "list"}, []string{"--config", yamlCfg}, nil,
			map[string]string{"output": "table", "data": "/from/config/top"}},
		{"section of a command group", []string{"jobs", "list"}, []string{"--config", yamlCfg}, nil,
			map[string]string{"output": "json"}},
		{"short alias counts as the flag", []string{"jobs", "list"}, []string{"-o", "table"}, map[string]string{"FLEETSIM_OUTPUT": "json"},
			map[string]string{"output": "table"}},
		{"env for a client command", []string{"jobs", "get"}, nil, map[string]string{"FLEETSIM_CONNECTION_STRING": "HostName=h;SharedAccessKeyName=k;SharedAccessKey=YQ=="},
			map[string]string{"connection-string": "HostName=h;SharedAccessKeyName=k;SharedAccessKey=YQ=="}},
		{"command-line-only flags ignore env", []string{"jobs", "list"}, nil, map[string]string{"FLEETSIM_STATUS": "running"},
			map[string]string{"status": ""}},
		{"run flags", []string{"run"}, []string{"x", "--seed", "7"}, map[string]string{"FLEETSIM_SEED": "8", "FLEETSIM_SHARD": "2/3", "FLEETSIM_NO_LIVE": "true"},
			map[string]string{"seed": "7", "shard": "2/3", "no-live": "true", "data": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := lookupCommand(t, tt.cmd)
			f := newFlagSet(strings.Join(tt.cmd, " "))
			c.setup(f)
			if _, err := f.parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if err := f.applyDefaults(func(k string) string { return tt.env[k] }, tt.cmd[0], allFlagNames()); err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				if got := f.fs.Lookup(name).Value.String(); got != want {
					t.Errorf("--%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func lookupCommand(t *testing.T, path []string) *command {
	t.Helper()
	list := commands()
	var c *command
	for _, name := range path {
		if c = find(list, name); c == nil {
			t.Fatalf("no command %v", path)
		}
		list = c.subs
	}
	return c
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	badCfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badCfg, []byte("hostnme: x\nserve:\n  colour: red\n"), 0o644)
	brokenCfg := filepath.Join(dir, "broken.yaml")
	os.WriteFile(brokenCfg, []byte("serve: [1,\n"), 0o644)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // in the one stderr line
	}{
		{"no command", nil, nil, "no command given"},
		{"unknown command", nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown subcommand", nil, []string{"jobs", "frobnicate"}, `jobs: unknown command "frobnicate"`},
		{"missing subcommand", nil, []string{"devices"}, "devices: missing subcommand"},
		{"unknown flag", nil, []string{"serve", "--frob"}, "serve: unknown flag -frob"},
		{"flag without value", nil, []string{"run", "quickstart", "--seed"}, "flag needs an argument"},
		{"bad bool", nil, []string{"run", "--no-live=maybe", "x"}, "invalid boolean value"},
		{"bad duration", nil, []string{"invoke", "d", "m", "--timeout", "soon"}, "invalid value"},
		{"run without scenario", nil, []string{"run"}, "run: missing SCENARIO"},
		{"run with two scenarios", nil, []string{"run", "a", "b"}, "want one SCENARIO"},
		{"bad seed", nil, []string{"run", "x", "--seed", "abc"}, `--seed "abc": want an integer`},
		{"unknown x509 mode", nil, []string{"devices", "create", "d", "--x509", "pki"}, `--x509 "pki": want self-signed or ca`},
		{"x509 ca without a CA", nil, []string{"devices", "create", "d", "--x509", "ca"}, "--x509 ca needs --device-ca FILE and --device-ca-key FILE"},
		{"CA-signed module", nil, []string{"modules", "create", "d", "m", "--x509", "ca"}, `--x509 "ca": want self-signed`},
		{"module without its id", nil, []string{"modules", "get", "d"}, "want DEVICE-ID and MODULE-ID"},
		{"device CA without its key", nil, []string{"run", "x", "--device-ca", "ca.pem"}, "--device-ca and --device-ca-key go together"},
		{"bad shard", nil, []string{"run", "x", "--shard", "5/4"}, "want 1 <= I <= N"},
		{"bad shard env", map[string]string{"FLEETSIM_SHARD": "x"}, []string{"run", "x"}, `--shard "x"`},
		{"shard without a hub", nil, []string{"run", "x", "--shard", "2/2"}, "--shard 2/2 needs --hub"},
		{"shard given twice", nil, []string{"run", "x", "--shard", "1/2", "--shard", "2/2"}, "given twice (1/2 and 2/2)"},
		{"shard auto outside a Job", map[string]string{"FLEETSIM_HUB": "HostName=h;SharedAccessKeyName=k;SharedAccessKey=YQ=="}, []string{"run", "x", "--shard", "auto"}, "JOB_COMPLETION_INDEX is not set"},
		{"explicit shard in an Indexed Job", map[string]string{"JOB_COMPLETION_INDEX": "1"}, []string{"run", "x", "--shard", "1/4"}, "use --shard auto"},
		{"hub twice", map[string]string{"FLEETSIM_HUB": "HostName=h;SharedAccessKeyName=k;SharedAccessKey=YQ=="}, []string{"run", "x", "--hub-file", "/nonexistent"}, "use one"},
		{"CA without its key", nil, []string{"serve", "--ca-cert", "ca.pem"}, "--ca-cert and --ca-key go together"},
		{"missing owner key file", nil, []string{"serve", "--owner-key-file", filepath.Join(dir, "nope")}, "--owner-key-file: open"},
		{"missing hub file", nil, []string{"run", "x", "--hub-file", filepath.Join(dir, "nope")}, "--hub-file: open"},
		{"bad env value", map[string]string{"FLEETSIM_NO_LIVE": "perhaps"}, []string{"run", "x"}, `FLEETSIM_NO_LIVE="perhaps"`},
		{"bad log level", nil, []string{"serve", "--log-level", "loud"}, `log level "loud"`},
		{"unknown config keys", nil, []string{"serve", "--config", badCfg}, "hostnme: no command has a flag --hostnme; serve.colour: 'fleetsim serve' has no flag --colour"},
		{"broken config", nil, []string{"serve", "--config", brokenCfg}, "config file " + brokenCfg},
		{"missing config", nil, []string{"serve", "--config", filepath.Join(dir, "nope.yaml")}, "no such file"},
		{"bad output", nil, []string{"jobs", "list", "-o", "xml"}, `-o "xml": want table or json`},
		{"version takes no args", nil, []string{"version", "now"}, "takes no arguments"},
		{"jobs create without work", nil, []string{"jobs", "create"}, "say what the job does"},
		{"jobs create with both", nil, []string{"jobs", "create", "--method", "m", "--desired", "{}"}, "choose one"},
		{"jobs create bad payload", nil, []string{"jobs", "create", "--method", "m", "--payload", "{"}, "--payload is not valid JSON"},
		{"jobs create bad start", nil, []string{"jobs", "create", "--method", "m", "--start", "tomorrow"}, "--start"},
		{"twin update without patch", nil, []string{"twin", "update", "d"}, "nothing to update"},
		{"invoke without method", nil, []string{"invoke", "d"}, "want DEVICE-ID and METHOD"},
		{"query without query", nil, []string{"query"}, "want a query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := testApp(t, tt.env, tt.args...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "fleetsim: ") || !strings.Contains(last, tt.want) {
				t.Errorf("last stderr line %q, want 'fleetsim: ...%s...'", last, tt.want)
			}
			// Usage text may precede the line only when no command was given.
			if len(args(tt.args)) > 0 && len(lines) != 1 {
				t.Errorf("want one line on stderr, got %d:\n%s", len(lines), stderr)
			}
		})
	}
}

func args(a []string) []string { return a }

func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"Commands:", "run", "serve", "Exit codes"}},
		{[]string{"help", "serve"}, []string{"Usage:\n  fleetsim serve [flags]", "--https-addr ADDR", "FLEETSIM_HTTPS_ADDR", "--config FILE", "Settings, highest precedence first", "Examples:"}},
		{[]string{"serve", "--help"}, []string{"--pprof ADDR", "default ./fleetsim-data", "serve:\n           data:"}},
		{[]string{"run", "-h"}, []string{"fleetsim run [flags] SCENARIO", "--seed SEED", "--shard I/N", "--report DIR", "--no-live", "FLEETSIM_SEED"}},
		{[]string{"jobs", "--help"}, []string{"create [JOB-ID]", "cancel JOB-ID"}},
		{[]string{"jobs", "create", "--help"}, []string{"--method NAME", "-o, --output FORMAT", "Examples:"}},
		{[]string{"scenarios", "--help"}, []string{"scenarios show NAME"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := testApp(t, nil, tt.args...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("help lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	f := newFlagSet("run")
	seed := f.fs.String("seed", "", "")
	pos, err := f.parse([]string{"a", "--seed", "3", "b", "--", "--c"})
	if err != nil {
		t.Fatal(err)
	}
	if *seed != "3" || strings.Join(pos, ",") != "a,b,--c" {
		t.Errorf("seed %q, positional %q", *seed, pos)
	}
}

func TestClientWithoutHub(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no connection.json", nil, []string{"jobs", "list", "--data", dir}, "does not exist; start 'fleetsim serve"},
		{"bad connection string", map[string]string{"FLEETSIM_CONNECTION_STRING": "nonsense"}, []string{"devices", "list", "--data", dir}, "service connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := testApp(t, tt.env, tt.args...)
			if code != exitFail || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and one line with %q", code, stderr, tt.want)
			}
		})
	}
}
