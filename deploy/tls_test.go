package deploy_test

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/servertls"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/testca"
)

// The keys cert-manager writes into a Certificate's Secret.
var certManagerKeys = []string{"tls.crt", "tls.key", "ca.crt"}

// tlsOverlay builds the overlay deploy/README.md describes: the base, the Certificate example and
// the TLS patch example, as kustomize (kubectl apply -k) would.
func tlsOverlay(t *testing.T) (*appsv1.Deployment, *serviceMonitor, *certificate, []*corev1.Service) {
	t.Helper()
	base, err := filepath.Abs(kubeDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for from, to := range map[string]string{"certificate.example.yaml": "certificate.yaml", "tls-patch.example.yaml": "tls-patch.yaml"} {
		b, err := os.ReadFile(filepath.Join(kubeDir, from)) //nolint:gosec // test fixture under deploy/
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Kustomize takes a base only by a relative path.
	rel, err := filepath.Rel(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	k := "resources:\n  - " + rel + "\n  - certificate.yaml\npatches:\n  - path: tls-patch.yaml\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	var (
		d        *appsv1.Deployment
		sm       *serviceMonitor
		cert     *certificate
		services []*corev1.Service
	)
	buildOverlay(t, dir, "the TLS overlay", func(kind string) any {
		switch kind {
		case "Deployment":
			d = &appsv1.Deployment{}
			return d
		case "ServiceMonitor":
			sm = &serviceMonitor{}
			return sm
		case "Certificate":
			cert = &certificate{}
			return cert
		case "Service":
			s := &corev1.Service{}
			services = append(services, s)
			return s
		}
		return nil
	})
	if d == nil || sm == nil || cert == nil || len(services) == 0 {
		t.Fatalf("the TLS overlay lacks the Deployment, the ServiceMonitor, the Certificate or the Services")
	}
	return d, sm, cert, services
}

// TestTLSExampleOverlay: the Certificate and the patch of deploy/kubernetes, applied over the base
// as deploy/README.md shows, make a pod that serves the admin port and the ingress over HTTPS
// from the Certificate's Secret, probed and scraped over HTTPS, with a configuration the worker
// accepts and certificate files it loads.
func TestTLSExampleOverlay(t *testing.T) {
	d, sm, cert, services := tlsOverlay(t)
	c := workerContainer(t, d)

	// The certificate names every Service its clients call, and may serve.
	for _, s := range services {
		if !slices.Contains(cert.Spec.DNSNames, s.Name) {
			t.Errorf("Certificate %s: dnsNames %v lack the Service %s", cert.Metadata.Name, cert.Spec.DNSNames, s.Name)
		}
	}
	if !slices.Contains(cert.Spec.Usages, "server auth") || cert.Spec.SecretName == "" {
		t.Errorf("Certificate %s: usages %v, secretName %q; want server auth and a Secret", cert.Metadata.Name, cert.Spec.Usages, cert.Spec.SecretName)
	}

	// The Secret is mounted whole (a subPath mount would never see a renewal).
	var mount *corev1.VolumeMount
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret == nil || v.Secret.SecretName != cert.Spec.SecretName {
			continue
		}
		for i, vm := range c.VolumeMounts {
			if vm.Name == v.Name {
				mount = &c.VolumeMounts[i]
			}
		}
	}
	switch {
	case mount == nil:
		t.Fatalf("no volume mount of the Certificate's Secret %s", cert.Spec.SecretName)
	case mount.SubPath != "" || !mount.ReadOnly:
		t.Errorf("the Secret %s is mounted with subPath %q, readOnly %t; want the whole volume, read-only", cert.Spec.SecretName, mount.SubPath, mount.ReadOnly)
	}

	// The TLS variables name the Secret's keys; the base's environment is kept.
	known := configVars()
	tlsEnv := map[string]string{}
	for _, e := range c.Env {
		if !strings.Contains(e.Name, "_TLS_") {
			continue
		}
		if !known[e.Name] {
			t.Errorf("env %s is not a variable internal/config reads", e.Name)
		}
		key, ok := strings.CutPrefix(e.Value, mount.MountPath+"/")
		if !ok || !slices.Contains(certManagerKeys, key) {
			t.Errorf("env %s=%s is not one of %v in %s", e.Name, e.Value, certManagerKeys, mount.MountPath)
		}
		tlsEnv[e.Name] = e.Value
	}
	for _, want := range []string{"ADMIN_TLS_CERT_FILE", "ADMIN_TLS_KEY_FILE", "INGRESS_TLS_CERT_FILE", "INGRESS_TLS_KEY_FILE"} {
		if _, ok := tlsEnv[want]; !ok {
			t.Errorf("the TLS patch does not set %s", want)
		}
	}
	base := workerContainer(t, only[*appsv1.Deployment](t, loadManifests(t), false))
	if len(c.Env) != len(base.Env)+len(tlsEnv) || len(c.VolumeMounts) != len(base.VolumeMounts)+1 {
		t.Errorf("the patch replaced the base's env or mounts instead of adding to them: %d env (base %d), %d mounts (base %d)",
			len(c.Env), len(base.Env), len(c.VolumeMounts), len(base.VolumeMounts))
	}

	// Probed over HTTPS, on the same paths and port.
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Scheme != corev1.URISchemeHTTPS ||
			p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s: %+v; want an HTTPS GET of %s on admin", p.what, p.probe, p.path)
		}
	}

	// Scraped over HTTPS, verified against the Secret's CA under a name the certificate holds.
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor: %d endpoints, want 1", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	switch {
	case ep.Scheme != "https" || ep.Port != "admin" || ep.Path != "/metrics":
		t.Errorf("ServiceMonitor endpoint %s %s %s; want https, admin, /metrics", ep.Scheme, ep.Port, ep.Path)
	case ep.TLSConfig == nil || ep.TLSConfig.CA == nil || ep.TLSConfig.CA.Secret == nil:
		t.Error("ServiceMonitor endpoint: no tlsConfig with the CA from a Secret")
	case !slices.Contains(cert.Spec.DNSNames, ep.TLSConfig.ServerName):
		t.Errorf("ServiceMonitor serverName %q is not in the certificate's dnsNames %v", ep.TLSConfig.ServerName, cert.Spec.DNSNames)
	case ep.TLSConfig.CA.Secret.Name != cert.Spec.SecretName || ep.TLSConfig.CA.Secret.Key != "ca.crt":
		t.Errorf("ServiceMonitor CA %s/%s, want %s/ca.crt", ep.TLSConfig.CA.Secret.Name, ep.TLSConfig.CA.Secret.Key, cert.Spec.SecretName)
	}

	// The worker accepts the configuration and loads the files, as cert-manager writes them.
	ca := testca.New(t, "issuer")
	secretDir := testca.NewSecretDir(t)
	secretDir.Write(t, ca.Server(t, cert.Spec.DNSNames...).Files(ca))
	env := shippedEnv(t, loadManifests(t))
	for name, v := range tlsEnv {
		env[name] = secretDir.Path(path.Base(v))
	}
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(env), false)
	if err != nil {
		t.Fatalf("the TLS overlay's configuration is refused: %v", err)
	}
	for what, f := range map[string]servertls.Files{
		"admin port": {Cert: cfg.AdminTLSCertFile, Key: cfg.AdminTLSKeyFile},
		"ingress":    {Cert: cfg.IngressTLSCertFile, Key: cfg.IngressTLSKeyFile},
	} {
		if _, err := servertls.Load(f, servertls.Options{}); err != nil {
			t.Errorf("%s: the Secret's files do not load: %v", what, err)
		}
	}
}

// TestTLSExampleNamesAnIssuerPlaceholder: the Certificate example leaves the issuer to the
// operator rather than naming one that might exist by accident.
func TestTLSExampleNamesAnIssuerPlaceholder(t *testing.T) {
	for _, o := range loadManifests(t).all {
		if c, ok := o.obj.(*certificate); ok {
			if !isExample(o.file) {
				t.Errorf("%s: a Certificate in an applied manifest; the base does not require cert-manager", o.file)
			}
			if !strings.HasPrefix(c.Spec.IssuerRef.Name, "REPLACE-ME") {
				t.Errorf("%s: issuerRef %q is not a REPLACE-ME placeholder", o.file, c.Spec.IssuerRef.Name)
			}
		}
	}
}

// buildOverlay runs kustomize (its library, as `kubectl apply -k` does) on dir and decodes, strictly,
// each resource into what into returns for its kind; nil leaves the resource out.
func buildOverlay(t *testing.T, dir, what string, into func(kind string) any) {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build of %s: %v", what, err)
	}
	for _, r := range resMap.Resources() {
		dst := into(r.GetKind())
		if dst == nil {
			continue
		}
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(b, dst); err != nil {
			t.Fatalf("%s: %s %s: %v", what, r.GetKind(), r.GetName(), err)
		}
	}
}
