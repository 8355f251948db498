package kubernetes

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// namespace is where the manifests put everything.
const namespace = "fleetsim"

// secretKeys are the Secrets the README has the user create, and their keys.
var secretKeys = map[string][]string{
	"fleetsim-ca":      {"ca.pem", "ca-key.pem"},
	"fleetsim-service": {"owner-key", "connection-string"},
}

// objects are the decoded manifests by kind.
type objects struct {
	namespaces   []corev1.Namespace
	configMaps   []corev1.ConfigMap
	services     []corev1.Service
	statefulSets []appsv1.StatefulSet
	jobs         []batchv1.Job
}

// documents splits a YAML stream at its "---" lines, dropping documents
// that hold only comments.
func documents(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		for _, line := range strings.Split(cur.String(), "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				docs = append(docs, slices.Clone(cur.Bytes()))
				break
			}
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.TrimRight(sc.Text(), " ") == "---" {
			flush()
			continue
		}
		cur.WriteString(sc.Text() + "\n")
	}
	flush()
	return docs
}

// decodeAll decodes every manifest strictly: an unknown or duplicate field
// anywhere is an error, as is a kind the test does not know.
func decodeAll(t *testing.T) objects {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var o objects
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range documents(b) {
			where := fmt.Sprintf("%s document %d", f, i+1)
			var tm metav1.TypeMeta
			if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			var target any
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Namespace":
				o.namespaces = append(o.namespaces, corev1.Namespace{})
				target = &o.namespaces[len(o.namespaces)-1]
			case "v1 ConfigMap":
				o.configMaps = append(o.configMaps, corev1.ConfigMap{})
				target = &o.configMaps[len(o.configMaps)-1]
			case "v1 Service":
				o.services = append(o.services, corev1.Service{})
				target = &o.services[len(o.services)-1]
			case "apps/v1 StatefulSet":
				o.statefulSets = append(o.statefulSets, appsv1.StatefulSet{})
				target = &o.statefulSets[len(o.statefulSets)-1]
			case "batch/v1 Job":
				o.jobs = append(o.jobs, batchv1.Job{})
				target = &o.jobs[len(o.jobs)-1]
			default:
				t.Errorf("%s: kind %q of %q is not one the test knows", where, tm.Kind, tm.APIVersion)
				continue
			}
			if err := sigsyaml.UnmarshalStrict(doc, target); err != nil {
				t.Errorf("%s (%s): %v", where, tm.Kind, err)
			}
		}
	}
	return o
}

// TestManifestsDecodeStrictly: unknown fields fail, and the manifests hold
// the hub and the fleet, all in one namespace.
func TestManifestsDecodeStrictly(t *testing.T) {
	o := decodeAll(t)
	if len(o.namespaces) != 1 || o.namespaces[0].Name != namespace {
		t.Errorf("namespaces %v, want %s", o.namespaces, namespace)
	}
	if len(o.statefulSets) != 1 || len(o.jobs) != 1 || len(o.services) == 0 || len(o.configMaps) != 1 {
		t.Fatalf("want one StatefulSet (the hub), one Job (the fleet), Services and one ConfigMap; got %d, %d, %d, %d",
			len(o.statefulSets), len(o.jobs), len(o.services), len(o.configMaps))
	}
	var metas []metav1.ObjectMeta
	for _, x := range o.configMaps {
		metas = append(metas, x.ObjectMeta)
	}
	for _, x := range o.services {
		metas = append(metas, x.ObjectMeta)
	}
	metas = append(metas, o.statefulSets[0].ObjectMeta, o.jobs[0].ObjectMeta)
	for _, m := range metas {
		if m.Namespace != namespace {
			t.Errorf("%s is in namespace %q, want %q", m.Name, m.Namespace, namespace)
		}
	}
}

// TestStrictDecodingCatchesTypos: the decoding the manifests go through
// refuses a misspelt or misplaced field, so the tests above would catch one.
func TestStrictDecodingCatchesTypos(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: StatefulSet\nspec:\n  replica: 1\n",
		"apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      containers:\n        - name: x\n          arg: [run]\n",
		"apiVersion: batch/v1\nkind: Job\nspec:\n  completions: 2\n  completions: 3\n",
	} {
		var target any = &appsv1.StatefulSet{}
		if strings.Contains(doc, "Job") {
			target = &batchv1.Job{}
		}
		if err := sigsyaml.UnmarshalStrict([]byte(doc), target); err == nil {
			t.Errorf("decoded without error:\n%s", doc)
		}
	}
}

// podChecks checks what a pod template refers to: volumes for every
// mount, Secrets and keys the README has users create, ConfigMaps that
// exist, and no secret on a command line.
// claims names the volumes a StatefulSet's claim templates add.
func podChecks(t *testing.T, name string, spec corev1.PodSpec, o objects, claims ...string) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, c := range claims {
		vols[c] = corev1.Volume{Name: c}
	}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: pods must run as non-root (the image's user is numeric)", name)
	}
	for _, v := range spec.Volumes {
		switch {
		case v.Secret != nil:
			keys, ok := secretKeys[v.Secret.SecretName]
			if !ok {
				t.Errorf("%s: volume %s: Secret %s is not one the README has users create", name, v.Name, v.Secret.SecretName)
			}
			for _, it := range v.Secret.Items {
				if !slices.Contains(keys, it.Key) {
					t.Errorf("%s: volume %s: Secret %s has no key %s", name, v.Name, v.Secret.SecretName, it.Key)
				}
			}
		case v.ConfigMap != nil:
			if !slices.ContainsFunc(o.configMaps, func(c corev1.ConfigMap) bool { return c.Name == v.ConfigMap.Name }) {
				t.Errorf("%s: volume %s: no ConfigMap %s", name, v.Name, v.ConfigMap.Name)
			}
		}
	}
	for _, c := range spec.Containers {
		for _, m := range c.VolumeMounts {
			if _, ok := vols[m.Name]; !ok {
				t.Errorf("%s: container %s mounts %s, which is no volume", name, c.Name, m.Name)
			}
		}
		for _, a := range append(slices.Clone(c.Command), c.Args...) {
			if strings.Contains(a, "SharedAccessKey") {
				t.Errorf("%s: container %s has a connection string on its command line", name, c.Name)
			}
		}
		for _, e := range c.Env {
			if strings.Contains(e.Value, "SharedAccessKey") {
				t.Errorf("%s: container %s has a connection string in plain env %s", name, c.Name, e.Name)
			}
			if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && !slices.Contains(secretKeys[r.SecretKeyRef.Name], r.SecretKeyRef.Key) {
				t.Errorf("%s: env %s: Secret %s has no key %s", name, e.Name, r.SecretKeyRef.Name, r.SecretKeyRef.Key)
			}
		}
	}
}

// TestHubManifest: a StatefulSet with a persistent volume for /data,
// Services that select its pod and reach its named ports, and a config
// whose host name is the Service's DNS name.
func TestHubManifest(t *testing.T) {
	o := decodeAll(t)
	if len(o.statefulSets) != 1 {
		t.Fatal("want one StatefulSet")
	}
	ss := o.statefulSets[0]
	if len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("the hub has %d volume claim templates, want 1", len(ss.Spec.VolumeClaimTemplates))
	}
	claim := ss.Spec.VolumeClaimTemplates[0].Name
	podChecks(t, "hub", ss.Spec.Template.Spec, o, claim)
	c := ss.Spec.Template.Spec.Containers[0]
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == claim && m.MountPath == "/data" }) {
		t.Errorf("the claim %s is not mounted at /data", claim)
	}
	sel, err := metav1.LabelSelectorAsMap(ss.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sel {
		if ss.Spec.Template.Labels[k] != v {
			t.Errorf("the selector's %s=%s is not on the pod template", k, v)
		}
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	governing := false
	for _, s := range o.services {
		for k, v := range s.Spec.Selector {
			if ss.Spec.Template.Labels[k] != v {
				t.Errorf("Service %s selects %s=%s, not on the hub's pods", s.Name, k, v)
			}
		}
		for _, p := range s.Spec.Ports {
			if _, ok := ports[p.TargetPort.StrVal]; !ok {
				t.Errorf("Service %s port %s targets %q, no port of the hub", s.Name, p.Name, p.TargetPort.String())
			}
		}
		governing = governing || (s.Name == ss.Spec.ServiceName && s.Spec.ClusterIP == corev1.ClusterIPNone)
	}
	if !governing {
		t.Errorf("no headless Service %s governs the StatefulSet", ss.Spec.ServiceName)
	}
	cfg := serveConfig(t, o)
	host := cfg["hostname"]
	if !slices.ContainsFunc(o.services, func(s corev1.Service) bool { return host == s.Name+"."+namespace+".svc" }) {
		t.Errorf("the hub's hostname %q is no Service's DNS name (NAME.%s.svc): the certificate would not match", host, namespace)
	}
	for flag, want := range map[string]string{"https-addr": ":" + strconv.Itoa(int(ports["https"])), "mqtt-addr": ":" + strconv.Itoa(int(ports["mqtts"])), "data": "/data"} {
		if cfg[flag] != want {
			t.Errorf("config %s = %q, want %q (the container's ports and volume)", flag, cfg[flag], want)
		}
	}
}

// serveConfig is the serve section of the hub's config file.
func serveConfig(t *testing.T, o objects) map[string]string {
	t.Helper()
	var doc struct {
		Serve map[string]string `yaml:"serve"`
	}
	dec := yaml.NewDecoder(strings.NewReader(o.configMaps[0].Data["fleetsim.yaml"]))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("the hub's fleetsim.yaml: %v", err)
	}
	return doc.Serve
}

// TestFleetManifest: an Indexed Job whose pods all run at once, take their
// shard from the completion index, agree on the shard count, read the
// connection string from the Secret, and reach the hub at the name its
// certificate is made for.
func TestFleetManifest(t *testing.T) {
	o := decodeAll(t)
	if len(o.jobs) != 1 {
		t.Fatal("want one Job")
	}
	job := o.jobs[0]
	podChecks(t, "fleet", job.Spec.Template.Spec, o)
	if job.Spec.CompletionMode == nil || *job.Spec.CompletionMode != batchv1.IndexedCompletion {
		t.Fatal("the fleet Job is not Indexed")
	}
	if job.Spec.Completions == nil || job.Spec.Parallelism == nil || *job.Spec.Completions != *job.Spec.Parallelism {
		t.Errorf("completions and parallelism must be equal: the shards play one timeline together")
	}
	c := job.Spec.Template.Spec.Containers[0]
	args := flagValues(c.Args)
	if args["shard"] != "auto" {
		t.Errorf("--shard %q, want auto", args["shard"])
	}
	shards := ""
	for _, e := range c.Env {
		if e.Name == "FLEETSIM_SHARDS" {
			shards = e.Value
		}
	}
	if n, err := strconv.Atoi(shards); err != nil || job.Spec.Completions == nil || int32(n) != *job.Spec.Completions {
		t.Errorf("FLEETSIM_SHARDS=%q, want the Job's completions", shards)
	}
	mounted := func(path string) bool {
		return slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(path, m.MountPath+"/") })
	}
	if f := args["hub-file"]; f == "" || !mounted(f) {
		t.Errorf("--hub-file %q is not in a mounted volume", f)
	}
	if f := args["ca"]; f == "" || !mounted(f) {
		t.Errorf("--ca %q is not in a mounted volume", f)
	}
	host := serveConfig(t, o)["hostname"]
	for _, flag := range []string{"hub-url", "mqtt-url"} {
		u, err := url.Parse(args[flag])
		if err != nil || u.Hostname() != host {
			t.Errorf("--%s %q does not name the hub's host %s", flag, args[flag], host)
		}
	}
}

// flagValues reads "--name value" and "--name=value" pairs.
func flagValues(args []string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(args); i++ {
		name, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			continue
		}
		if n, v, ok := strings.Cut(name, "="); ok {
			m[n] = v
		} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			m[name] = args[i+1]
			i++
		} else {
			m[name] = "true"
		}
	}
	return m
}

// commandFlags builds fleetsim and reads from `fleetsim CMD --help` the
// flags CMD takes and the environment variables they read.
func commandFlags(t *testing.T, bin, cmd string) (flags, env map[string]bool) {
	t.Helper()
	out, err := exec.Command(bin, cmd, "--help").Output()
	if err != nil {
		t.Fatalf("fleetsim %s --help: %v", cmd, err)
	}
	_, section, ok := strings.Cut(string(out), "\nFlags:\n")
	if !ok {
		t.Fatalf("fleetsim %s --help has no Flags section:\n%s", cmd, out)
	}
	section, _, _ = strings.Cut(section, "\n\n")
	flags, env = map[string]bool{}, map[string]bool{}
	flagRE := regexp.MustCompile(`^\s+(?:-\w, )?--([a-z0-9-]+)`)
	envRE := regexp.MustCompile(`env (FLEETSIM_[A-Z0-9_]+)`)
	for _, line := range strings.Split(section, "\n") {
		if m := flagRE.FindStringSubmatch(line); m != nil {
			flags[m[1]] = true
		}
		if m := envRE.FindStringSubmatch(line); m != nil {
			env[m[1]] = true
		}
	}
	if len(flags) == 0 {
		t.Fatalf("no flags read from fleetsim %s --help", cmd)
	}
	return flags, env
}

// TestManifestsAgreeWithTheCommand: every flag a container passes, every
// FLEETSIM_ variable it sets and every key of the hub's config file is
// one the fleetsim command it runs takes.
func TestManifestsAgreeWithTheCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the fleetsim command")
	}
	bin := filepath.Join(t.TempDir(), "fleetsim")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/fleetsim").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	o := decodeAll(t)
	var containers []corev1.Container
	for _, ss := range o.statefulSets {
		containers = append(containers, ss.Spec.Template.Spec.Containers...)
	}
	for _, j := range o.jobs {
		containers = append(containers, j.Spec.Template.Spec.Containers...)
	}
	for _, c := range containers {
		if len(c.Args) == 0 || strings.HasPrefix(c.Args[0], "-") {
			t.Errorf("container %s: the first argument must be a fleetsim command", c.Name)
			continue
		}
		cmd := c.Args[0]
		flags, env := commandFlags(t, bin, cmd)
		for name := range flagValues(c.Args[1:]) {
			if !flags[name] {
				t.Errorf("container %s passes --%s, which 'fleetsim %s' does not take", c.Name, name, cmd)
			}
		}
		for _, e := range c.Env {
			// FLEETSIM_SHARDS is read by --shard auto, not a flag's variable.
			if strings.HasPrefix(e.Name, "FLEETSIM_") && e.Name != "FLEETSIM_SHARDS" && !env[e.Name] {
				t.Errorf("container %s sets %s, which 'fleetsim %s' does not read", c.Name, e.Name, cmd)
			}
		}
		if cmd == "serve" {
			for key := range serveConfig(t, o) {
				if !flags[key] {
					t.Errorf("the hub's config file sets %s, which 'fleetsim serve' does not take", key)
				}
			}
		}
	}
}
