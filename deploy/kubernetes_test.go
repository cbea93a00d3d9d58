package deploy_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tenants"
)

// distrolessNonroot is the uid and gid of the "nonroot" user of gcr.io/distroless/*:nonroot,
// the Dockerfile's final stage.
const distrolessNonroot = 65532

// Downward-API values the tests give the pod when they expand $(VAR) references.
var downward = map[string]string{
	"metadata.name":      "vidm-sync-worker-7d9f8c6b5-x2x4q",
	"metadata.namespace": "dirsync",
}

// configVars are the variables internal/config reads, from the env tags of config.Config.
func configVars() map[string]bool {
	vars := map[string]bool{}
	// The concerns (NATS, Streams, ...) are embedded structs: their fields are the variables.
	for _, f := range reflect.VisibleFields(reflect.TypeFor[config.Config]()) {
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
			vars[name] = true
		}
	}
	if len(vars) < 50 {
		panic(fmt.Sprintf("found %d variables in config.Config's env tags; the struct walk is broken", len(vars)))
	}
	return vars
}

// secretFileVars are the <NAME>_FILE variables config.Load reads a secret from. They are found
// by asking Load itself: with <NAME>_FILE naming a missing file, Load names <NAME>_FILE in its
// error exactly when it reads that variable.
func secretFileVars(t *testing.T) map[string]bool {
	t.Helper()
	missing := filepath.Join(t.TempDir(), "missing")
	vars := map[string]bool{}
	for name := range configVars() {
		env := requiredEnv()
		delete(env, name) // "both NAME and NAME_FILE are set" would name NAME instead
		env[name+"_FILE"] = missing
		_, err := config.Load(context.Background(), envconfig.MapLookuper(env), false)
		if err != nil && strings.Contains(err.Error(), name+"_FILE: ") {
			vars[name+"_FILE"] = true
		}
	}
	// The probe must find at least the secrets the README documents, or it is probing wrong.
	for _, want := range []string{"NATS_PASSWORD_FILE", "NATS_TOKEN_FILE", "VIDM_CLIENT_SECRET_FILE", "VIDM_PASSWORD_FILE",
		"ADMIN_TOKEN_FILE", "ADMIN_READ_TOKEN_FILE", "INGRESS_TOKEN_FILE"} {
		if !vars[want] {
			t.Fatalf("config.Load does not read %s (found %v); the manifests rely on it", want, slices.Sorted(maps.Keys(vars)))
		}
	}
	return vars
}

// workerContainer is the Deployment's one container.
func workerContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("deployment %s has %d containers; the tests expect the worker alone", d.Name, len(cs))
	}
	return cs[0]
}

func configMapNamed(m *manifests, name string, withExamples bool) *corev1.ConfigMap {
	for _, cm := range every[*corev1.ConfigMap](m, withExamples) {
		if cm.Name == name {
			return cm
		}
	}
	return nil
}

func secretNamed(m *manifests, name string) *corev1.Secret {
	for _, s := range every[*corev1.Secret](m, true) {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// configMapData is the data of the ConfigMap the worker takes its environment from.
func configMapData(t *testing.T) map[string]string {
	t.Helper()
	m := loadManifests(t)
	c := workerContainer(t, only[*appsv1.Deployment](t, m, false))
	data := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		cm := configMapNamed(m, ef.ConfigMapRef.Name, false)
		if cm == nil {
			t.Fatalf("envFrom names ConfigMap %q, which no manifest in the kustomization defines", ef.ConfigMapRef.Name)
		}
		maps.Copy(data, cm.Data)
	}
	return data
}

// podEnv is the worker's environment as Kubernetes builds it: the envFrom ConfigMaps, then env
// (which wins), with $(VAR) references and downward-API fields resolved.
func podEnv(t *testing.T, m *manifests) map[string]string {
	t.Helper()
	c := workerContainer(t, only[*appsv1.Deployment](t, m, false))
	env := configMapData(t)
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand(e.Value, env)
		case e.ValueFrom.FieldRef != nil:
			v, ok := downward[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				t.Fatalf("env %s: the tests have no value for downward-API field %q", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
		default:
			t.Fatalf("env %s: only literal values and fieldRef are expected (secrets are files)", e.Name)
		}
	}
	return env
}

// expand resolves $(VAR) as Kubernetes does for variables defined before.
func expand(s string, env map[string]string) string {
	for name, v := range env {
		s = strings.ReplaceAll(s, "$("+name+")", v)
	}
	return s
}

// mountedFiles writes, into a temporary directory per volume mount, the files the volume would
// hold (from the Secret and ConfigMap manifests or their examples), and returns the mount paths
// mapped to those directories.
func mountedFiles(t *testing.T, m *manifests) map[string]string {
	t.Helper()
	d := only[*appsv1.Deployment](t, m, false)
	c := workerContainer(t, d)
	out := map[string]string{}
	for _, vm := range c.VolumeMounts {
		dir := filepath.Join(t.TempDir(), vm.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for key, content := range volumeFiles(t, m, d, vm.Name) {
			if err := os.WriteFile(filepath.Join(dir, key), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out[vm.MountPath] = dir
	}
	return out
}

// volumeFiles are the files of a pod volume by name, from the manifests and their examples.
func volumeFiles(t *testing.T, m *manifests, d *appsv1.Deployment, volume string) map[string]string {
	t.Helper()
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name != volume {
			continue
		}
		files := map[string]string{}
		var items []corev1.KeyToPath
		switch {
		case v.Secret != nil:
			s := secretNamed(m, v.Secret.SecretName)
			if s == nil {
				t.Fatalf("volume %s: Secret %q has no manifest or example documenting its keys", volume, v.Secret.SecretName)
			}
			for k, b := range s.Data {
				files[k] = string(b)
			}
			maps.Copy(files, s.StringData)
			items = v.Secret.Items
		case v.ConfigMap != nil:
			cm := configMapNamed(m, v.ConfigMap.Name, true)
			if cm == nil {
				t.Fatalf("volume %s: ConfigMap %q has no manifest or example documenting its keys", volume, v.ConfigMap.Name)
			}
			maps.Copy(files, cm.Data)
			items = v.ConfigMap.Items
		default:
			t.Fatalf("volume %s: only Secret and ConfigMap volumes are expected", volume)
		}
		if len(items) > 0 {
			picked := map[string]string{}
			for _, it := range items {
				picked[it.Path] = files[it.Key]
			}
			files = picked
		}
		return files
	}
	t.Fatalf("volume mount %s names no volume", volume)
	return nil
}

// shippedConfig loads the configuration the pod would start with: the ConfigMap, the env, and the
// secret and CA files of the examples at their mount paths.
func shippedConfig(t *testing.T, m *manifests) config.Config {
	t.Helper()
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(shippedEnv(t, m)), false)
	if err != nil {
		t.Fatalf("the shipped manifests (with the example Secret and CA bundles) do not make a valid configuration:\n%v", err)
	}
	return cfg
}

// shippedEnv is the environment the pod would start with, its *_FILE variables pointing at the
// examples' files in temporary directories.
func shippedEnv(t *testing.T, m *manifests) map[string]string {
	t.Helper()
	env := podEnv(t, m)
	mounts := mountedFiles(t, m)
	for name, v := range env {
		if !strings.HasSuffix(name, "_FILE") {
			continue
		}
		for mountPath, dir := range mounts {
			if rel, ok := strings.CutPrefix(v, mountPath+"/"); ok {
				env[name] = filepath.Join(dir, rel)
			}
		}
	}
	return env
}

// TestManifestsDecodeStrictly: every document under deploy/kubernetes is a Kubernetes object of a
// known kind that decodes into the real API type without unknown or duplicate fields, and is
// namespace-agnostic.
func TestManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	seen := map[string]string{}
	for _, o := range m.all {
		meta := objectMeta(o.obj)
		if meta.Name == "" {
			t.Errorf("%s: %s has no metadata.name", o.file, o.kind)
		}
		if meta.Namespace != "" {
			t.Errorf("%s: %s %s sets namespace %q; the base is applied into the namespace of the operator's choice", o.file, o.kind, meta.Name, meta.Namespace)
		}
		if meta.Labels["app.kubernetes.io/name"] != "vidm-sync-worker" {
			t.Errorf("%s: %s %s lacks the label app.kubernetes.io/name=vidm-sync-worker", o.file, o.kind, meta.Name)
		}
		// An example may be a patch of an applied object (tls-patch.example.yaml), never a
		// second definition among the applied ones or the examples.
		id := o.kind + " " + meta.Name
		if isExample(o.file) {
			id = "example " + id
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("%s: %s is also defined in %s", o.file, id, prev)
		}
		seen[id] = o.file
	}
	for _, want := range []string{"apps/v1 Deployment", "v1 Service", "v1 ConfigMap", "v1 Secret", "policy/v1 PodDisruptionBudget",
		"networking.k8s.io/v1 NetworkPolicy", "monitoring.coreos.com/v1 ServiceMonitor"} {
		if !slices.ContainsFunc(m.all, func(o object) bool { return o.kind == want }) {
			t.Errorf("no %s under %s", want, kubeDir)
		}
	}
}

// TestKustomizationListsEveryManifest: kustomization.yaml applies exactly the manifests in the
// directory, never an example (examples hold placeholders; real secrets never go to git), and the
// Deployment's image has a fixed tag.
func TestKustomizationListsEveryManifest(t *testing.T) {
	m := loadManifests(t)
	k := m.kustomization
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: apiVersion %q kind %q", k.APIVersion, k.Kind)
	}
	paths, err := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range paths {
		if f := filepath.Base(p); f != "kustomization.yaml" && !isExample(f) {
			want = append(want, f)
		}
	}
	got := slices.Clone(k.Resources)
	slices.Sort(got)
	if len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("kustomization.yaml lists a resource twice: %v", k.Resources)
	}
	for _, f := range want {
		if !slices.Contains(got, f) {
			t.Errorf("kustomization.yaml does not list %s", f)
		}
	}
	for _, f := range got {
		switch {
		case isExample(f):
			t.Errorf("kustomization.yaml lists %s: examples are never applied", f)
		case !slices.Contains(want, f):
			t.Errorf("kustomization.yaml lists %s, which is not a file in %s", f, kubeDir)
		}
	}

	// The image is pinned (overlays replace it with `images:`): never a moving tag.
	c := workerContainer(t, only[*appsv1.Deployment](t, m, false))
	if name, tag, _ := strings.Cut(path.Base(c.Image), ":"); !strings.Contains(c.Image, "@sha256:") && (tag == "" || tag == "latest" || name == "") {
		t.Errorf("deployment.yaml: image %q needs a fixed tag or digest", c.Image)
	}
}

// TestKustomizeBuilds runs kustomize (as built into kubectl) on the base where kubectl is
// installed; the other tests cover the files without it.
func TestKustomizeBuilds(t *testing.T) {
	// Kustomize's own library, as `kubectl apply -k` runs it: no kubectl needed.
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), kubeDir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", kubeDir, err)
	}
	b, err := resMap.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, want := range []string{"kind: Deployment", "kind: ServiceMonitor", "image: registry.example.com/vidm-sync-worker:"} {
		if !strings.Contains(out, want) {
			t.Errorf("kustomize output lacks %q", want)
		}
	}
	if strings.Contains(out, "REPLACE-ME") {
		t.Error("kustomize output contains an example placeholder: an example is applied")
	}
}

// TestDeploymentEnvironmentIsWorkerConfiguration: every variable the pod gets (from env and from
// the envFrom ConfigMap) is one internal/config reads, or a downward-API value that a later
// variable refers to as $(NAME); no secret is passed as a value.
func TestDeploymentEnvironmentIsWorkerConfiguration(t *testing.T) {
	m := loadManifests(t)
	c := workerContainer(t, only[*appsv1.Deployment](t, m, false))
	known := configVars()
	secretFiles := secretFileVars(t)
	maps.Copy(known, secretFiles)
	isSecret := func(name string) bool { return secretFiles[name+"_FILE"] }

	for _, ef := range c.EnvFrom {
		switch {
		case ef.Prefix != "":
			t.Errorf("envFrom with prefix %q: the worker reads unprefixed names", ef.Prefix)
		case ef.SecretRef != nil:
			t.Errorf("envFrom Secret %q: secrets are mounted as files and named by *_FILE variables", ef.SecretRef.Name)
		case ef.ConfigMapRef != nil:
			cm := configMapNamed(m, ef.ConfigMapRef.Name, false)
			if cm == nil {
				t.Errorf("envFrom ConfigMap %q is not defined by the kustomization", ef.ConfigMapRef.Name)
				continue
			}
			for _, key := range slices.Sorted(maps.Keys(cm.Data)) {
				switch {
				case !known[key]:
					t.Errorf("ConfigMap %s: %s is not a variable internal/config reads", cm.Name, key)
				case isSecret(key):
					t.Errorf("ConfigMap %s: %s is a secret; mount it and set %s_FILE", cm.Name, key, key)
				}
			}
			if len(cm.BinaryData) > 0 {
				t.Errorf("ConfigMap %s: binaryData cannot be environment variables", cm.Name)
			}
		}
	}
	seen := map[string]bool{}
	for i, e := range c.Env {
		if seen[e.Name] {
			t.Errorf("env %s is set twice", e.Name)
		}
		seen[e.Name] = true
		if e.ValueFrom != nil && (e.ValueFrom.SecretKeyRef != nil || e.ValueFrom.ConfigMapKeyRef != nil) {
			t.Errorf("env %s: from a key reference; secrets are files (*_FILE), settings come from the ConfigMap", e.Name)
		}
		switch {
		case isSecret(e.Name):
			t.Errorf("env %s: a secret as a value; mount it and set %s_FILE", e.Name, e.Name)
		case known[e.Name]:
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			if !slices.ContainsFunc(c.Env[i+1:], func(later corev1.EnvVar) bool {
				return known[later.Name] && strings.Contains(later.Value, "$("+e.Name+")")
			}) {
				t.Errorf("env %s: a downward-API value that no later worker variable refers to as $(%s)", e.Name, e.Name)
			}
		default:
			t.Errorf("env %s is not a variable internal/config reads", e.Name)
		}
	}
}

// TestFileVariablesPointIntoMountedVolumes: every *_FILE variable names a file inside a mounted
// volume, under a key that the volume's Secret or ConfigMap (or its example) has, and every key
// of the example Secret is used.
func TestFileVariablesPointIntoMountedVolumes(t *testing.T) {
	m := loadManifests(t)
	d := only[*appsv1.Deployment](t, m, false)
	c := workerContainer(t, d)
	env := podEnv(t, m)
	usedKeys := map[string]map[string]bool{} // volume → keys named by a *_FILE variable
	for _, name := range slices.Sorted(maps.Keys(env)) {
		v := env[name]
		if !strings.HasSuffix(name, "_FILE") || v == "" {
			continue
		}
		if !path.IsAbs(v) {
			t.Errorf("%s=%q is not an absolute path", name, v)
			continue
		}
		var mount *corev1.VolumeMount
		for i, vm := range c.VolumeMounts {
			if strings.HasPrefix(v, strings.TrimSuffix(vm.MountPath, "/")+"/") {
				mount = &c.VolumeMounts[i]
			}
		}
		if mount == nil {
			t.Errorf("%s=%s is in no mounted volume (mounts: %v)", name, v, mountPaths(c))
			continue
		}
		if mount.SubPath != "" {
			t.Errorf("volume mount %s uses subPath: an updated Secret would never reach the pod", mount.Name)
		}
		if !mount.ReadOnly {
			t.Errorf("volume mount %s is not readOnly", mount.Name)
		}
		key := strings.TrimPrefix(v, strings.TrimSuffix(mount.MountPath, "/")+"/")
		files := volumeFiles(t, m, d, mount.Name)
		if _, ok := files[key]; !ok {
			t.Errorf("%s=%s: volume %s has no key %q (it has %v)", name, v, mount.Name, key, slices.Sorted(maps.Keys(files)))
		}
		if usedKeys[mount.Name] == nil {
			usedKeys[mount.Name] = map[string]bool{}
		}
		usedKeys[mount.Name][key] = true
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret == nil {
			continue
		}
		for key := range volumeFiles(t, m, d, v.Name) {
			if !usedKeys[v.Name][key] {
				t.Errorf("Secret %s: key %s is mounted but no *_FILE variable names it", v.Secret.SecretName, key)
			}
		}
	}
}

func mountPaths(c corev1.Container) []string {
	var out []string
	for _, vm := range c.VolumeMounts {
		out = append(out, vm.MountPath)
	}
	return out
}

// TestSecretExampleHoldsPlaceholdersOnly: the example Secret is documentation; a real value
// there would be a leaked secret.
func TestSecretExampleHoldsPlaceholdersOnly(t *testing.T) {
	m := loadManifests(t)
	for _, o := range m.all {
		s, ok := o.obj.(*corev1.Secret)
		if !ok {
			continue
		}
		if !isExample(o.file) {
			t.Errorf("%s: Secret %s in a manifest that is applied; real secrets never go to git (use *.example.yaml)", o.file, s.Name)
		}
		if len(s.Data) > 0 {
			t.Errorf("%s: Secret %s has data; the example uses stringData placeholders", o.file, s.Name)
		}
		for k, v := range s.StringData {
			if !strings.HasPrefix(v, "REPLACE-ME") {
				t.Errorf("%s: Secret %s key %s is not a REPLACE-ME placeholder", o.file, s.Name, k)
			}
		}
	}
}

// TestShippedConfigurationIsValid: the ConfigMap and the Deployment's env, with the example
// secrets and CA bundles at their mount paths, make a configuration config.Load accepts, with
// the production choices.
func TestShippedConfigurationIsValid(t *testing.T) {
	cfg := shippedConfig(t, loadManifests(t))
	if cfg.LogFormat != "json" {
		t.Errorf("LOG_FORMAT %q, want json in production", cfg.LogFormat)
	}
	if cfg.StreamReplicas != prodReplicas {
		t.Errorf("STREAM_REPLICAS %d, want %d", cfg.StreamReplicas, prodReplicas)
	}
	if cfg.VIDMInsecureSkipVerify {
		t.Error("VIDM_INSECURE_SKIP_VERIFY is on")
	}
	if strings.Contains(cfg.ResultSource, "$(") {
		t.Errorf("RESULT_SOURCE %q refers to a variable not defined before it", cfg.ResultSource)
	}
}

// port is the port number of a listen address such as ":9090".
func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("address %q: port %v", addr, err)
	}
	return int32(n)
}

// containerPort resolves a port by name or number against the container; 0 if it has none.
func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// TestProbesAndPortsMatchTheListeners: the container ports named admin and ingress are the ports
// of ADMIN_ADDR and INGRESS_ADDR, and liveness and readiness probe /healthz and /readyz there.
func TestProbesAndPortsMatchTheListeners(t *testing.T) {
	m := loadManifests(t)
	d := only[*appsv1.Deployment](t, m, false)
	c := workerContainer(t, d)
	cfg := shippedConfig(t, m)
	admin, ingress := port(t, cfg.AdminAddr), port(t, cfg.IngressAddr)
	if got := containerPort(c, intstr.FromString("admin")); got != admin {
		t.Errorf("container port \"admin\" is %d, ADMIN_ADDR %q listens on %d", got, cfg.AdminAddr, admin)
	}
	if got := containerPort(c, intstr.FromString("ingress")); got != ingress {
		t.Errorf("container port \"ingress\" is %d, INGRESS_ADDR %q listens on %d", got, cfg.IngressAddr, ingress)
	}
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			t.Errorf("%s: want an httpGet of %s on the admin port", p.what, p.path)
		case p.probe.HTTPGet.Path != p.path:
			t.Errorf("%s: path %q, want %s", p.what, p.probe.HTTPGet.Path, p.path)
		case containerPort(c, p.probe.HTTPGet.Port) != admin:
			t.Errorf("%s: port %s is not the admin port %d (ADMIN_ADDR)", p.what, p.probe.HTTPGet.Port.String(), admin)
		case p.probe.HTTPGet.Scheme != "" && p.probe.HTTPGet.Scheme != corev1.URISchemeHTTP:
			t.Errorf("%s: scheme %s; the admin port serves plain HTTP", p.what, p.probe.HTTPGet.Scheme)
		}
	}
	// SIGTERM: intake finishes recording triggers in flight (at most 10 s each) and the NATS
	// connection drains (nats.go's default drain timeout, 30 s), before SIGKILL.
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 45 {
		t.Errorf("terminationGracePeriodSeconds %v: the graceful stop needs at least 45 s", g)
	}
}

func selects(t *testing.T, sel *metav1.LabelSelector, lbls map[string]string) bool {
	t.Helper()
	if sel == nil || len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return false // an empty selector selects everything: never what is meant here
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("label selector %v: %v", sel, err)
	}
	return s.Matches(labels.Set(lbls))
}

// TestSelectorsMatchTheWorkerPods: the Deployment, both Services, the PodDisruptionBudget, the
// NetworkPolicy and the spread constraints select the worker's pods; the Services' target ports
// exist; the ServiceMonitor selects the admin Service and scrapes its "admin" port at /metrics.
func TestSelectorsMatchTheWorkerPods(t *testing.T) {
	m := loadManifests(t)
	d := only[*appsv1.Deployment](t, m, false)
	c := workerContainer(t, d)
	cfg := shippedConfig(t, m)
	pod := d.Spec.Template.Labels
	if !selects(t, d.Spec.Selector, pod) {
		t.Errorf("Deployment %s: selector %v does not match its pod labels %v", d.Name, d.Spec.Selector, pod)
	}

	var adminSvc, ingressSvc []string
	services := every[*corev1.Service](m, false)
	for _, s := range services {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod)) {
			t.Errorf("Service %s: selector %v does not match the pod labels %v", s.Name, s.Spec.Selector, pod)
		}
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			switch containerPort(c, target) {
			case 0:
				t.Errorf("Service %s port %s: target port %s is not a container port", s.Name, p.Name, target.String())
			case port(t, cfg.AdminAddr):
				adminSvc = append(adminSvc, s.Name)
				if p.Name != "admin" {
					t.Errorf("Service %s: the admin port is named %q; the ServiceMonitor scrapes \"admin\"", s.Name, p.Name)
				}
			case port(t, cfg.IngressAddr):
				ingressSvc = append(ingressSvc, s.Name)
			}
		}
	}
	if len(adminSvc) != 1 || len(ingressSvc) != 1 || adminSvc[0] == ingressSvc[0] {
		t.Errorf("want one Service for the admin port and a separate one for the ingress port; admin: %v, ingress: %v", adminSvc, ingressSvc)
	}

	sm := only[*serviceMonitor](t, m, false)
	var scraped int
	for _, s := range services {
		if !selects(t, &sm.Spec.Selector, s.Labels) {
			continue
		}
		scraped++
		for _, ep := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
				t.Errorf("ServiceMonitor %s selects Service %s, which has no port named %q", sm.Metadata.Name, s.Name, ep.Port)
			}
		}
	}
	if scraped == 0 {
		t.Errorf("ServiceMonitor %s: selector %v selects no Service", sm.Metadata.Name, sm.Spec.Selector)
	}
	if len(sm.Spec.Endpoints) == 0 {
		t.Errorf("ServiceMonitor %s has no endpoints", sm.Metadata.Name)
	}
	for _, ep := range sm.Spec.Endpoints {
		if ep.Path != "/metrics" {
			t.Errorf("ServiceMonitor %s: path %q, want /metrics", sm.Metadata.Name, ep.Path)
		}
		interval, err1 := time.ParseDuration(ep.Interval)
		timeout, err2 := time.ParseDuration(ep.ScrapeTimeout)
		if err1 != nil || err2 != nil || timeout > interval {
			t.Errorf("ServiceMonitor %s: interval %q and scrapeTimeout %q must be durations, the timeout no longer", sm.Metadata.Name, ep.Interval, ep.ScrapeTimeout)
		}
	}

	pdb := only[*policyv1.PodDisruptionBudget](t, m, false)
	if !selects(t, pdb.Spec.Selector, pod) {
		t.Errorf("PodDisruptionBudget %s: selector does not match the pod labels", pdb.Name)
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.String() != "1" {
		t.Errorf("PodDisruptionBudget %s: minAvailable %v, want 1", pdb.Name, pdb.Spec.MinAvailable)
	}
	np := only[*networkingv1.NetworkPolicy](t, m, false)
	if !selects(t, &np.Spec.PodSelector, pod) {
		t.Errorf("NetworkPolicy %s: podSelector does not match the pod labels", np.Name)
	}
	for _, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
		if !selects(t, tsc.LabelSelector, pod) {
			t.Errorf("topologySpreadConstraint on %s: labelSelector does not match the pod labels", tsc.TopologyKey)
		}
	}
}

// TestNetworkPolicyCoversThePorts: Prometheus in the monitoring namespace reaches the admin port,
// labelled publisher namespaces reach the ingress port, nothing else gets in, and the worker
// reaches NATS and vIDM on the ports of NATS_URL and VIDM_URL, and DNS.
func TestNetworkPolicyCoversThePorts(t *testing.T) {
	m := loadManifests(t)
	c := workerContainer(t, only[*appsv1.Deployment](t, m, false))
	np := only[*networkingv1.NetworkPolicy](t, m, false)
	cfg := shippedConfig(t, m)
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("NetworkPolicy %s: policyTypes %v, want Ingress and Egress", np.Name, np.Spec.PolicyTypes)
	}

	// allowsIn reports whether some ingress rule admits TCP to port n from a namespace selected
	// by a selector that ok accepts.
	allowsIn := func(n int32, ok func(*metav1.LabelSelector) bool) bool {
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if (p.Protocol == nil || *p.Protocol == corev1.ProtocolTCP) && p.Port != nil && containerPort(c, *p.Port) == n {
					if slices.ContainsFunc(r.From, func(peer networkingv1.NetworkPolicyPeer) bool { return ok(peer.NamespaceSelector) }) {
						return true
					}
				}
			}
		}
		return false
	}
	monitoring := func(s *metav1.LabelSelector) bool {
		return s != nil && s.MatchLabels["kubernetes.io/metadata.name"] == "monitoring"
	}
	labelled := func(s *metav1.LabelSelector) bool {
		return s != nil && (len(s.MatchLabels) > 0 || len(s.MatchExpressions) > 0) && !monitoring(s)
	}
	if admin := port(t, cfg.AdminAddr); !allowsIn(admin, monitoring) {
		t.Errorf("NetworkPolicy %s: the admin port %d is not open to the monitoring namespace", np.Name, admin)
	}
	if ingress := port(t, cfg.IngressAddr); !allowsIn(ingress, labelled) {
		t.Errorf("NetworkPolicy %s: the ingress port %d is not open to labelled publisher namespaces", np.Name, ingress)
	}
	for i, r := range np.Spec.Ingress {
		if len(r.From) == 0 || len(r.Ports) == 0 {
			t.Errorf("NetworkPolicy %s: ingress rule %d admits any source or any port", np.Name, i)
		}
	}

	allowsOut := func(n int32, proto corev1.Protocol) bool {
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				pr := corev1.ProtocolTCP
				if p.Protocol != nil {
					pr = *p.Protocol
				}
				if pr == proto && p.Port != nil && p.Port.Type == intstr.Int && p.Port.IntVal == n {
					return true
				}
			}
		}
		return false
	}
	need := map[string]int32{}
	for i, u := range strings.Split(cfg.NATSURL, ",") {
		need["NATS_URL server "+strconv.Itoa(i+1)] = urlPort(t, strings.TrimSpace(u), 4222)
	}
	need["VIDM_URL"] = urlPort(t, cfg.VIDMURL, 443)
	for what, n := range need {
		if !allowsOut(n, corev1.ProtocolTCP) {
			t.Errorf("NetworkPolicy %s: no egress to TCP port %d (%s)", np.Name, n, what)
		}
	}
	for _, proto := range []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP} {
		if !allowsOut(53, proto) {
			t.Errorf("NetworkPolicy %s: no egress to DNS (%s 53)", np.Name, proto)
		}
	}
}

// urlPort is the port a URL connects to, def when it names none.
func urlPort(t *testing.T, raw string, def int32) int32 {
	t.Helper()
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	if u.Port() == "" {
		if u.Scheme == "http" {
			return 80
		}
		return def
	}
	n, err := strconv.ParseInt(u.Port(), 10, 32)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	return int32(n)
}

// TestPodIsHardened: two replicas rolled without going below two and spread across nodes; the
// container runs as the image's non-root user with a read-only root, no privilege escalation,
// no capabilities and the runtime's seccomp profile; requests and limits are set and leave room
// for the service's memory target.
func TestPodIsHardened(t *testing.T) {
	m := loadManifests(t)
	d := only[*appsv1.Deployment](t, m, false)
	c := workerContainer(t, d)
	spec := d.Spec.Template.Spec

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	if s := d.Spec.Strategy; s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
		s.RollingUpdate.MaxUnavailable == nil || s.RollingUpdate.MaxUnavailable.String() != "0" {
		t.Errorf("strategy %+v: want RollingUpdate with maxUnavailable 0", s)
	}
	if !slices.ContainsFunc(spec.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
		return c.TopologyKey == "kubernetes.io/hostname"
	}) {
		t.Error("no topologySpreadConstraint across nodes (kubernetes.io/hostname)")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false: the worker needs no Kubernetes API token")
	}

	psc, csc := spec.SecurityContext, c.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if csc == nil {
		t.Fatal("the container has no securityContext")
	}
	if !isTrue(csc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
		t.Error("runAsNonRoot is not set")
	}
	for _, uid := range []*int64{psc.RunAsUser, csc.RunAsUser} {
		if uid != nil && *uid != distrolessNonroot {
			t.Errorf("runAsUser %d is not the image's nonroot user %d", *uid, distrolessNonroot)
		}
	}
	if !isTrue(csc.ReadOnlyRootFilesystem) {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if csc.Privileged != nil && *csc.Privileged {
		t.Error("the container is privileged")
	}
	if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") || len(csc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v: want drop ALL and nothing added", csc.Capabilities)
	}
	seccomp := csc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %+v, want RuntimeDefault", seccomp)
	}
	if psc.FSGroup == nil {
		t.Error("fsGroup is not set: the non-root user could not read the secret files")
	}

	req, lim := c.Resources.Requests, c.Resources.Limits
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		q, okReq := req[r]
		l, okLim := lim[r]
		switch {
		case !okReq || !okLim:
			t.Errorf("resources: %s needs a request and a limit", r)
		case q.Cmp(l) > 0:
			t.Errorf("resources: %s request %s exceeds the limit %s", r, q.String(), l.String())
		}
	}
	// The service targets under 150 MiB resident; a lower limit would OOM-kill it within target.
	if l, ok := lim[corev1.ResourceMemory]; ok && l.Cmp(resource.MustParse("150Mi")) < 0 {
		t.Errorf("memory limit %s is below the service's 150 MiB target", l.String())
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// TestTenantsExampleLoads: the example tenants file of deploy/kubernetes is one the worker accepts,
// with its secret files at the paths the Deployment mounts.
func TestTenantsExampleLoads(t *testing.T) {
	m := loadManifests(t)
	cm := configMapNamed(m, "vidm-sync-worker-tenants", true)
	if cm == nil {
		t.Fatal("no example ConfigMap vidm-sync-worker-tenants")
	}
	read := func(path string) ([]byte, error) {
		if !strings.HasPrefix(path, "/etc/vidm-sync-worker/tenant-secrets/") && !strings.HasPrefix(path, "/etc/vidm-sync-worker/ca/") {
			return nil, fmt.Errorf("%s is outside the mounted tenant secrets and CA bundles", path)
		}
		return []byte("placeholder"), nil
	}
	// The worker's own secret files (the Deployment's *_FILE variables) are off limits.
	var own []string
	for _, e := range workerContainer(t, only[*appsv1.Deployment](t, m, false)).Env {
		if strings.HasSuffix(e.Name, "_FILE") {
			own = append(own, e.Value)
		}
	}
	f, err := tenants.Parse([]byte(cm.Data["tenants.yaml"]), "/etc/vidm-sync-worker/tenants", read,
		tenants.Defaults{MaxConcurrentSyncs: 8, SecretsDir: "/etc/vidm-sync-worker/tenant-secrets", Reserved: own})
	if err != nil {
		t.Fatalf("the example tenants file is refused: %v", err)
	}
	if got := f.Names(); !slices.Equal(got, []string{"corp", "lab", "vcf"}) || f.DefaultTenant != "corp" {
		t.Fatalf("tenants %v (default %q)", got, f.DefaultTenant)
	}
}

// TestAlertRulesReadOurMetrics: every alert has a summary and a severity, and reads only metrics
// the worker exposes (the dashboard's, which a test in internal/ops/metrics holds to exactly the
// worker's).
func TestAlertRulesReadOurMetrics(t *testing.T) {
	m := loadManifests(t)
	dash, err := os.ReadFile(filepath.Join("grafana", "vidm-sync-worker.json"))
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`dirsync_[a-z_]+`)
	alerts := 0
	for _, o := range m.all {
		r, ok := o.obj.(*prometheusRule)
		if !ok {
			continue
		}
		for _, g := range r.Spec.Groups {
			for _, rule := range g.Rules {
				alerts++
				if rule.Alert == "" || rule.Annotations["summary"] == "" || rule.Labels["severity"] == "" {
					t.Errorf("%s: rule %+v needs an alert name, a summary and a severity", o.file, rule)
				}
				for _, n := range names.FindAllString(rule.Expr, -1) {
					if !strings.Contains(string(dash), n) {
						t.Errorf("%s: alert %s reads %s, which the worker does not expose", o.file, rule.Alert, n)
					}
				}
			}
		}
	}
	if alerts < 4 {
		t.Errorf("%d alert rules, want the tenant, stuck directory, token and readiness alerts", alerts)
	}
}
