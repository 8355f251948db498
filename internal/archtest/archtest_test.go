package archtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/fleetsim/fleetsim"

// rule says what a package (and, unless exact, the packages under it) may not import.
type rule struct {
	pkg    string
	exact  bool     // applies to pkg only, not to the packages below it
	stdlib bool     // only the standard library and the module paths in allow
	allow  []string // with stdlib: the module-internal or third-party prefixes allowed
	deny   []string // import path prefixes that are forbidden
	// only, when set, are the packages of this module it may import, each
	// exactly (not the packages below it); third-party imports are not limited.
	only []string
}

var rules = []rule{
	{pkg: "internal/iothub", stdlib: true},
	{pkg: "internal/memnet", stdlib: true},
	{pkg: "internal/sysmem", stdlib: true},
	{pkg: "internal/fleetmem", stdlib: true},
	{pkg: "internal/walframe", stdlib: true},
	{pkg: "internal/tlsutil", stdlib: true},
	{pkg: "internal/archtest", stdlib: true},
	// The manifests' package has no code; the Kubernetes modules are its test's alone.
	{pkg: "deploy/kubernetes", stdlib: true},
	{pkg: "hubjobs/query", stdlib: true, allow: []string{"internal/iothub"}},
	{pkg: "broker", deny: []string{"hubjobs", "devicesim", "scenarios", "cmd", "github.com/eclipse/paho.mqtt.golang"}},
	{pkg: "hubjobs/jobs", deny: []string{"hubjobs/registry", "hubjobs/regstore", "hubjobs/jobstore", "hubjobs/restapi", "broker", "devicesim", "scenarios", "go.etcd.io/bbolt"}},
	{pkg: "hubjobs/registry", deny: []string{"hubjobs/regstore", "hubjobs/jobstore", "hubjobs/restapi", "broker", "devicesim", "scenarios", "go.etcd.io/bbolt"}},
	{pkg: "hubjobs/c2d", deny: []string{"hubjobs/registry", "hubjobs/regstore", "hubjobs/jobstore", "hubjobs/c2dstore", "hubjobs/restapi", "broker", "devicesim", "scenarios", "github.com/mochi-mqtt", "go.etcd.io/bbolt"}},
	{pkg: "hubjobs/c2dstore", deny: []string{"hubjobs/restapi", "hubjobs/registry", "broker", "devicesim", "scenarios"}},
	{pkg: "hubjobs/regstore", deny: []string{"hubjobs/restapi", "broker", "devicesim", "scenarios"}},
	{pkg: "hubjobs/jobstore", deny: []string{"hubjobs/restapi", "hubjobs/registry", "broker", "devicesim", "scenarios"}},
	{pkg: "hubjobs/restapi", deny: []string{"hubjobs/regstore", "hubjobs/jobstore", "broker", "devicesim", "scenarios", "go.etcd.io/bbolt", "github.com/mochi-mqtt"}},
	{pkg: "hubjobs/console", deny: []string{"hubjobs/registry", "hubjobs/regstore", "hubjobs/jobstore", "hubjobs/restapi", "hubjobs/metrics", "broker", "devicesim", "scenarios", "cmd", "go.etcd.io/bbolt", "github.com/mochi-mqtt"}},
	{pkg: "hubjobs/metrics", deny: []string{"hubjobs/restapi", "hubjobs/regstore", "hubjobs/jobstore", "devicesim", "scenarios", "cmd"}},
	{pkg: "devicesim", deny: []string{"broker", "hubjobs", "scenarios", "github.com/mochi-mqtt"}},
	// The runner drives the hub through its root (or restapi.Client for a
	// remote hub), never through the hub's parts; it feeds the console's
	// scenario page, which declares what it reads.
	{pkg: "scenarios/runner", exact: true, only: []string{"hubjobs", "hubjobs/restapi", "hubjobs/console", "devicesim", "scenarios", "scenarios/rollout", "internal/iothub", "internal/tlsutil"},
		deny: []string{"github.com/mochi-mqtt"}},
	{pkg: "scenarios", exact: true, deny: []string{"broker", "hubjobs/registry", "hubjobs/regstore", "hubjobs/jobstore", "hubjobs/restapi", "scenarios/runner", "github.com/mochi-mqtt"}},
}

// internalNonLeaf lists the packages under internal/ that import more than
// the standard library, and why; every other one has a stdlib rule above
// (a leaf), so a new package under internal/ must be placed in one or the
// other.
var internalNonLeaf = map[string]string{
	"internal/ceiling":  "measures what paho and mochi reach alone",
	"internal/boltfile": "opens the stores' bbolt files",
	"internal/testkit":  "builds a whole hub for tests",
}

// internalUp lists the packages under internal/ that may import a top-level
// package (the README's architecture table names them): every other
// internal package is a leaf or imports only internal/ packages.
var internalUp = map[string][]string{
	"internal/testkit": {"hubjobs"}, // test helpers: a whole hub for tests
}

type pkgInfo struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Standard   bool
	Goroot     bool
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	out, err := exec.Command("go", "list", "-e", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkgInfo
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkgInfo
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func standardPackages(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "std").Output()
	if err != nil {
		t.Fatalf("go list std: %v", err)
	}
	std := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		std[sc.Text()] = true
	}
	return std
}

func hasPrefix(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func expand(p string) string {
	if strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
		return p // third-party
	}
	return module + "/" + p
}

func TestImportRules(t *testing.T) {
	std := standardPackages(t)
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, r := range rules {
			if rel != r.pkg && (r.exact || !hasPrefix(rel, r.pkg)) {
				continue
			}
			for _, imp := range p.Imports {
				if r.stdlib && !std[imp] {
					ok := false
					for _, a := range r.allow {
						ok = ok || hasPrefix(imp, expand(a))
					}
					if !ok {
						t.Errorf("%s imports %s: only the standard library%s is allowed", rel, imp, allowText(r.allow))
					}
				}
				for _, d := range r.deny {
					if hasPrefix(imp, expand(d)) {
						t.Errorf("%s imports %s, which the architecture forbids", rel, imp)
					}
				}
				if r.only != nil && hasPrefix(imp, module) && !slices.Contains(r.only, strings.TrimPrefix(imp, module+"/")) {
					t.Errorf("%s imports %s: of this module it may import only %s", rel, imp, strings.Join(r.only, ", "))
				}
			}
		}
		if hasPrefix(rel, "internal") {
			for _, imp := range p.Imports {
				if !hasPrefix(imp, module) || hasPrefix(imp, module+"/internal") {
					continue
				}
				ok := false
				for _, a := range internalUp[rel] {
					ok = ok || hasPrefix(imp, expand(a))
				}
				if !ok {
					t.Errorf("%s imports %s: packages under internal/ import no top-level package unless the README's table says so", rel, imp)
				}
			}
		}
		for _, imp := range p.Imports {
			if hasPrefix(imp, module+"/internal/testkit") {
				t.Errorf("%s imports internal/testkit outside a _test.go file", rel)
			}
		}
	}
}

// TestInternalPackagesAreLeavesOrListed: every package under internal/ is
// a leaf (a stdlib rule) or listed in internalNonLeaf with its reason, not
// both, so that which ones are leaves is decided here and not by accident.
func TestInternalPackagesAreLeavesOrListed(t *testing.T) {
	leaf := map[string]bool{}
	for _, r := range rules {
		if r.stdlib && len(r.allow) == 0 {
			leaf[r.pkg] = true
		}
	}
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if !hasPrefix(rel, "internal") {
			continue
		}
		_, listed := internalNonLeaf[rel]
		switch {
		case leaf[rel] && listed:
			t.Errorf("%s is both a leaf and listed in internalNonLeaf", rel)
		case !leaf[rel] && !listed:
			t.Errorf("%s is neither a leaf (a stdlib rule) nor listed in internalNonLeaf", rel)
		}
	}
}

// TestRulesNameRealPackages: a rule for a package that was moved or removed
// would pass silently, so every package a rule names exists.
func TestRulesNameRealPackages(t *testing.T) {
	have := map[string]bool{}
	for _, p := range listPackages(t) {
		have[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = true
	}
	var named []string
	for _, r := range rules {
		named = append(named, r.pkg)
	}
	for pkg := range internalUp {
		named = append(named, pkg)
	}
	for pkg := range internalNonLeaf {
		named = append(named, pkg)
	}
	for _, pkg := range named {
		if !have[pkg] {
			t.Errorf("an import rule names %s, which is not a package of the module", pkg)
		}
	}
}

// TestREADMETableMatchesTree: the README's architecture table has a row for
// every package of the module, and no row for a package that is gone.
func TestREADMETableMatchesTree(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, arch, ok := bytes.Cut(b, []byte("\n## Architecture\n"))
	if !ok {
		t.Fatal("README.md has no Architecture section")
	}
	arch, _, _ = bytes.Cut(arch, []byte("\n## "))
	var rows []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllSubmatch(arch, -1) {
		rows = append(rows, string(m[1]))
	}
	var pkgs []string
	for _, p := range listPackages(t) {
		pkgs = append(pkgs, strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/"))
	}
	for _, p := range pkgs {
		if !slices.Contains(rows, p) {
			t.Errorf("README's architecture table has no row for package %s", p)
		}
	}
	for _, r := range rows {
		if !slices.Contains(pkgs, r) {
			t.Errorf("README's architecture table has a row for %s, which is not a package of the module", r)
		}
	}
}

// TestCommandLeavesOutKubernetes: the Kubernetes API modules, which only
// the manifests' test needs, are not linked into the fleetsim command.
func TestCommandLeavesOutKubernetes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", module+"/cmd/fleetsim").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "sigs.k8s.io/") {
			t.Errorf("the fleetsim command depends on %s", p)
		}
	}
}

func allowText(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return " and " + strings.Join(a, ", ")
}

func TestEveryPackageHasADoc(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Name == "main" {
			if p.Doc == "" {
				t.Errorf("command %s has no doc comment", p.ImportPath)
			}
			continue
		}
		if !strings.HasPrefix(p.Doc, "Package "+p.Name+" ") {
			t.Errorf("package %s has no package doc comment starting %q", p.ImportPath, "Package "+p.Name)
		}
	}
}
