package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
)

const tracingComponent = "kubernetes/components/tracing"

// TestTracingComponent builds the base with the tracing component, as an overlay would: the
// ConfigMap names an OTLP endpoint, the pod's added variables are the worker's own or downward-API
// values defined before they are used, the configuration they make turns tracing on, and the
// NetworkPolicy lets the spans out.
func TestTracingComponent(t *testing.T) {
	cm, dep, np := buildWithTracing(t, "")
	// The variables the pod gets, in order; $(NAME) must refer to one defined before.
	env := map[string]string{}
	downward := map[string]string{"POD_NAMESPACE": "dirsync", "POD_NAME": "vidm-sync-worker-7d9f-x2x4q"}
	known := configVars()
	for _, e := range workerContainer(t, &dep).Env {
		if e.ValueFrom != nil {
			if _, ok := downward[e.Name]; !ok {
				t.Fatalf("%s comes from %v, which this test does not know", e.Name, e.ValueFrom)
			}
			env[e.Name] = downward[e.Name]
			continue
		}
		if !known[e.Name] && !strings.HasSuffix(e.Name, "_FILE") {
			t.Errorf("the pod gets %s, which the worker does not read", e.Name)
		}
		v := e.Value
		for _, ref := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(e.Value, -1) {
			got, ok := env[ref[1]]
			if !ok {
				t.Fatalf("%s refers to $(%s) before it is defined", e.Name, ref[1])
			}
			v = strings.ReplaceAll(v, ref[0], got)
		}
		env[e.Name] = v
	}
	// A minimal valid configuration, with what the component adds.
	vars := map[string]string{"NATS_URL": "nats://nats:4222", "VIDM_URL": "https://vidm.example.com", "VIDM_CLIENT_ID": "w", "VIDM_CLIENT_SECRET": "s",
		"OTEL_EXPORTER_OTLP_ENDPOINT": cm.Data["OTEL_EXPORTER_OTLP_ENDPOINT"], "OTEL_RESOURCE_ATTRIBUTES": env["OTEL_RESOURCE_ATTRIBUTES"]}
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(vars), false)
	if err != nil {
		t.Fatalf("the component's settings are not a valid configuration: %v", err)
	}
	attrs := cfg.ResourceAttributes()
	if !cfg.TracingEnabled() || cfg.TracesURL() != "http://otel-collector.observability.svc:4318/v1/traces" ||
		attrs["k8s.namespace.name"] != "dirsync" || attrs["k8s.pod.name"] != downward["POD_NAME"] || attrs["service.name"] != "vidm-sync-worker" {
		t.Fatalf("tracing %v to %q with resource %v", cfg.TracingEnabled(), cfg.TracesURL(), attrs)
	}

	// The exporter's port is let out, and only the observability namespace is reached on it.
	allowed := slices.ContainsFunc(np.Spec.Egress, func(r networkingv1.NetworkPolicyEgressRule) bool {
		return len(r.Ports) == 1 && r.Ports[0].Port.IntValue() == 4318 && len(r.To) == 1 && r.To[0].NamespaceSelector != nil &&
			r.To[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "observability"
	})
	if !allowed || len(np.Spec.Egress) != 4 {
		t.Fatalf("NetworkPolicy egress %+v: want the base's three rules and OTLP/HTTP to observability", np.Spec.Egress)
	}
}

// buildWithTracing builds an overlay of the base with the tracing component and the given
// kustomization lines (patches), and returns its ConfigMap, Deployment and NetworkPolicy.
func buildWithTracing(t *testing.T, more string) (corev1.ConfigMap, appsv1.Deployment, networkingv1.NetworkPolicy) {
	t.Helper()
	overlay := t.TempDir()
	// Kustomize takes relative paths only.
	rel := func(p string) string {
		a, err := filepath.Abs(p)
		if err == nil {
			p, err = filepath.Rel(overlay, a)
		}
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + rel(kubeDir) +
		"\ncomponents:\n  - " + rel(tracingComponent) + "\n" + more
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	var (
		cm  corev1.ConfigMap
		dep appsv1.Deployment
		np  networkingv1.NetworkPolicy
	)
	buildOverlay(t, overlay, "the base with "+tracingComponent, func(kind string) any {
		switch kind {
		case "ConfigMap":
			return &cm
		case "Deployment":
			return &dep
		case "NetworkPolicy":
			return &np
		}
		return nil
	})
	return cm, dep, np
}

// The overlay of deploy/README.md ("10. Tracing") moves the endpoint and the egress rule elsewhere.
func TestTracingComponentOverlayExample(t *testing.T) {
	cm, _, np := buildWithTracing(t, `patches:
  - patch: |-
      apiVersion: v1
      kind: ConfigMap
      metadata: { name: vidm-sync-worker-config }
      data:
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://tempo-distributor.tracing.svc:4318"
  - target: { kind: NetworkPolicy, name: vidm-sync-worker }
    patch: |
      - { op: replace, path: /spec/egress/3/to/0/namespaceSelector/matchLabels/kubernetes.io~1metadata.name, value: tracing }
`)
	if cm.Data["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://tempo-distributor.tracing.svc:4318" ||
		np.Spec.Egress[3].To[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "tracing" {
		t.Fatalf("endpoint %q, egress %+v", cm.Data["OTEL_EXPORTER_OTLP_ENDPOINT"], np.Spec.Egress)
	}
}
