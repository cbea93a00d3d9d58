package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const kubeDir = "kubernetes"

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor (monitoring.coreos.com/v1)
// the manifests use; strict decoding rejects anything else, so a misspelt field cannot hide.
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		JobLabel  string `json:"jobLabel,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
			TLSConfig     *struct {
				ServerName string `json:"serverName,omitempty"`
				CA         *struct {
					Secret *corev1.SecretKeySelector `json:"secret,omitempty"`
				} `json:"ca,omitempty"`
			} `json:"tlsConfig,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// certificate is the part of cert-manager's Certificate (cert-manager.io/v1) the examples use.
type certificate struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		SecretName  string   `json:"secretName"`
		DNSNames    []string `json:"dnsNames"`
		Duration    string   `json:"duration,omitempty"`
		RenewBefore string   `json:"renewBefore,omitempty"`
		PrivateKey  *struct {
			Algorithm      string `json:"algorithm,omitempty"`
			Size           int    `json:"size,omitempty"`
			RotationPolicy string `json:"rotationPolicy,omitempty"`
		} `json:"privateKey,omitempty"`
		Usages    []string `json:"usages,omitempty"`
		IssuerRef struct {
			Group string `json:"group,omitempty"`
			Kind  string `json:"kind,omitempty"`
			Name  string `json:"name"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// prometheusRule is the part of the Prometheus Operator's PrometheusRule the manifests use.
type prometheusRule struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// kustomization is the part of kustomize.config.k8s.io/v1beta1 Kustomization the base uses.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// object is one decoded manifest document.
type object struct {
	file string // base name under kubernetes/
	kind string // apiVersion + " " + kind
	name string
	obj  any // *appsv1.Deployment, *corev1.Service, …, *serviceMonitor
}

// kinds maps apiVersion and kind to the real type a document must decode into.
var kinds = map[string]func() any{
	"apps/v1 Deployment":                      func() any { return &appsv1.Deployment{} },
	"v1 Service":                              func() any { return &corev1.Service{} },
	"v1 ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1 Secret":                               func() any { return &corev1.Secret{} },
	"v1 ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"policy/v1 PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1 NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1 ServiceMonitor": func() any { return &serviceMonitor{} },
	"monitoring.coreos.com/v1 PrometheusRule": func() any { return &prometheusRule{} },
	"cert-manager.io/v1 Certificate":          func() any { return &certificate{} },
}

// manifests holds every document under kubernetes/, decoded strictly.
type manifests struct {
	all           []object
	kustomization kustomization
}

// loadManifests decodes every YAML document under kubernetes/ into its real Kubernetes type with
// unknown and duplicate fields as errors. It fails the test on the first unusable document.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no manifests under %s", kubeDir)
	}
	m := &manifests{}
	for _, path := range paths {
		file := filepath.Base(path)
		for i, doc := range yamlDocuments(t, path) {
			where := file
			if i > 0 {
				where = file + " (document " + strconv.Itoa(i+1) + ")"
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: not YAML: %v", where, err)
			}
			key := tm.APIVersion + " " + tm.Kind
			if key == "kustomize.config.k8s.io/v1beta1 Kustomization" {
				if file != "kustomization.yaml" {
					t.Fatalf("%s: a Kustomization outside kustomization.yaml", where)
				}
				if err := yaml.UnmarshalStrict(doc, &m.kustomization); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				continue
			}
			newObj, ok := kinds[key]
			if !ok {
				t.Fatalf("%s: apiVersion %q kind %q is not one the tests know; add it to kinds", where, tm.APIVersion, tm.Kind)
			}
			obj := newObj()
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s: does not decode strictly as %s: %v", where, key, err)
			}
			m.all = append(m.all, object{file: file, kind: key, name: objectMeta(obj).Name, obj: obj})
		}
	}
	return m
}

// yamlDocuments splits a file into its non-empty documents.
func yamlDocuments(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // test fixture under deploy/
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if hasContent(doc) {
			docs = append(docs, doc)
		}
	}
}

// hasContent: a document of comments only (a file header) is no document.
func hasContent(doc []byte) bool {
	for line := range strings.SplitSeq(string(doc), "\n") {
		if s := strings.TrimSpace(line); s != "" && s != "---" && !strings.HasPrefix(s, "#") {
			return true
		}
	}
	return false
}

func objectMeta(obj any) metav1.ObjectMeta {
	switch o := obj.(type) {
	case *serviceMonitor:
		return o.Metadata
	case *prometheusRule:
		return o.Metadata
	case *certificate:
		return o.Metadata
	case metav1.Object:
		return metav1.ObjectMeta{Name: o.GetName(), Namespace: o.GetNamespace(), Labels: o.GetLabels()}
	}
	return metav1.ObjectMeta{}
}

// only returns the single object of type T in the manifests (examples excluded unless
// withExamples), failing the test if there is not exactly one.
func only[T any](t *testing.T, m *manifests, withExamples bool) T {
	t.Helper()
	all := every[T](m, withExamples)
	if len(all) != 1 {
		var zero T
		t.Fatalf("want exactly one %T in %s, found %d", zero, kubeDir, len(all))
	}
	return all[0]
}

func every[T any](m *manifests, withExamples bool) []T {
	var out []T
	for _, o := range m.all {
		if v, ok := o.obj.(T); ok && (withExamples || !isExample(o.file)) {
			out = append(out, v)
		}
	}
	return out
}

// isExample: *.example.yaml documents what the operator creates; it is never applied.
func isExample(file string) bool { return strings.HasSuffix(file, ".example.yaml") }
