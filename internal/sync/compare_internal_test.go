package sync

import (
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func obj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSubsetDiff(t *testing.T) {
	const base = "apiVersion: v1\nkind: X\nmetadata: {name: a}\n"
	tests := []struct {
		name, want, live, diff string
	}{
		{"equal", "spec: {a: 1}", "spec: {a: 1}", ""},
		{"live has more keys (defaults)", "spec: {a: 1}", "spec: {a: 1, b: 2}", ""},
		{"changed scalar", "spec: {replicas: 1}", "spec: {replicas: 4}", "spec.replicas"},
		{"missing key", "spec: {a: 1}", "spec: {}", "spec.a"},
		{"int and float", "spec: {a: 1}", "spec: {a: 1.0}", ""},
		{"list item changed", "spec: {c: [{name: x, image: a}]}", "spec: {c: [{name: x, image: b, pull: Always}]}", "spec.c[0].image"},
		{"list longer live", "spec: {c: [a]}", "spec: {c: [a, b]}", "spec.c"},
		{"quantities under requests", "spec: {requests: {cpu: '0.5', memory: 1Gi}}", "spec: {requests: {cpu: 500m, memory: 1024Mi}}", ""},
		{"no quantity semantics elsewhere", "spec: {tag: '1.10'}", "spec: {tag: '1.1'}", "spec.tag"},
		{"null matches absent", "spec: {a: null}", "spec: {}", ""},
		{"empty map matches absent", "spec: {resources: {}}", "spec: {}", ""},
		{"status ignored", "status: {ready: false}", "status: {ready: true}", ""},
		{"label changed", "metadata: {name: a, labels: {x: '1'}}", "metadata: {name: a, labels: {x: '2'}}", "metadata.labels.x"},
		{"server metadata ignored", "metadata: {name: a, creationTimestamp: null}", "metadata: {name: a, creationTimestamp: '2026-01-01T00:00:00Z', uid: u}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := obj(t, base+tt.want)
			l := obj(t, base+tt.live)
			if got := subsetDiff(comparable(w), l.Object, "", ""); got != tt.diff {
				t.Fatalf("diff = %q, want %q", got, tt.diff)
			}
		})
	}
}

func TestSubsetDiffSecretStringData(t *testing.T) {
	w := obj(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {p: hunter2}\ndata: {q: eA==}\n")
	l := obj(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {p: aHVudGVyMg==, q: eA==}\ntype: Opaque\n")
	if d := subsetDiff(comparable(w), l.Object, "", ""); d != "" {
		t.Fatalf("diff %q", d)
	}
	l.Object["data"].(map[string]any)["p"] = "b3RoZXI="
	if d := subsetDiff(comparable(w), l.Object, "", ""); d != "data.p" {
		t.Fatalf("diff %q, want data.p", d)
	}
}

func TestPrepareChecksum(t *testing.T) {
	d := obj(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, resourceVersion: '5', uid: x}\nspec: {replicas: 2}\n")
	p := prepare(d, "me", false)
	if p.GetLabels()[LabelOwner] != "me" || p.GetAnnotations()[AnnotationOwner] != "me" || p.GetResourceVersion() != "" || p.GetUID() != "" {
		t.Fatalf("prepared metadata: %v", p.Object["metadata"])
	}
	if d.GetLabels() != nil {
		t.Fatal("prepare modified its input")
	}
	again := prepare(p, "me", false)
	if again.GetAnnotations()[AnnotationChecksum] != p.GetAnnotations()[AnnotationChecksum] {
		t.Fatal("checksum is not stable")
	}
	stripped := prepare(d, "me", true)
	if _, ok, _ := unstructured.NestedFieldNoCopy(stripped.Object, "spec", "replicas"); ok {
		t.Fatal("replicas not stripped")
	}
	if stripped.GetAnnotations()[AnnotationChecksum] == p.GetAnnotations()[AnnotationChecksum] {
		t.Fatal("stripping replicas did not change the checksum")
	}
}

func entry(manager string, op metav1.ManagedFieldsOperationType, sub, fields string) metav1.ManagedFieldsEntry {
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: op, Subresource: sub, APIVersion: "apps/v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
}

func TestManagedFieldsPatch(t *testing.T) {
	const (
		ours     = `{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`
		edit     = `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{"f:env":{}}}}}}}`
		scale    = `{"f:spec":{"f:replicas":{}}}`
		statusFS = `{"f:status":{"f:replicas":{}}}`
	)
	takeOver := map[string]bool{"kubectl-edit": true, "kubectl": true}
	tests := []struct {
		name            string
		entries         []metav1.ManagedFieldsEntry
		releaseReplicas bool
		wantNil         bool
		wantManagers    []string
		wantOwn         []string // substrings of imagebot's merged entry
		notOwn          []string
	}{{
		name:    "nothing to take over",
		entries: []metav1.ManagedFieldsEntry{entry("imagebot", "Apply", "", ours), entry("kube-controller-manager", "Update", "status", statusFS)},
		wantNil: true,
	}, {
		name: "kubectl-edit merged into imagebot; subresources left alone",
		entries: []metav1.ManagedFieldsEntry{entry("imagebot", "Apply", "", ours), entry("kubectl-edit", "Update", "", edit),
			entry("kubectl", "Update", "scale", scale), entry("kube-controller-manager", "Update", "status", statusFS)},
		wantManagers: []string{"kubectl/Update/scale", "kube-controller-manager/Update/status", "imagebot/Apply/"},
		wantOwn:      []string{`"f:env"`, `"f:image"`},
	}, {
		name:         "no imagebot entry yet: the take-over entry becomes imagebot's",
		entries:      []metav1.ManagedFieldsEntry{entry("kubectl", "Update", "", edit), entry("other", "Update", "", scale)},
		wantManagers: []string{"other/Update/", "imagebot/Apply/"},
		wantOwn:      []string{`"f:env"`},
	}, {
		name:            "an HPA took over: release spec.replicas",
		entries:         []metav1.ManagedFieldsEntry{entry("imagebot", "Apply", "", ours)},
		releaseReplicas: true,
		wantManagers:    []string{"imagebot/Apply/"},
		wantOwn:         []string{`"f:image"`},
		notOwn:          []string{`"f:replicas"`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := &unstructured.Unstructured{Object: map[string]any{}}
			live.SetManagedFields(tt.entries)
			live.SetResourceVersion("42")
			patch, err := managedFieldsPatch(live, "imagebot", takeOver, tt.releaseReplicas)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNil {
				if patch != nil {
					t.Fatalf("want no patch, got %s", patch)
				}
				return
			}
			var ops []struct {
				Op, Path string
				Value    json.RawMessage
			}
			if err := json.Unmarshal(patch, &ops); err != nil {
				t.Fatal(err)
			}
			if len(ops) != 2 || ops[1].Path != "/metadata/resourceVersion" || string(ops[1].Value) != `"42"` {
				t.Fatalf("patch must guard the resourceVersion: %s", patch)
			}
			var got []metav1.ManagedFieldsEntry
			if err := json.Unmarshal(ops[0].Value, &got); err != nil {
				t.Fatal(err)
			}
			var managers []string
			var own string
			for _, e := range got {
				managers = append(managers, e.Manager+"/"+string(e.Operation)+"/"+e.Subresource)
				if e.Manager == "imagebot" {
					own = string(e.FieldsV1.Raw)
				}
			}
			if strings.Join(managers, " ") != strings.Join(tt.wantManagers, " ") {
				t.Fatalf("managers %v, want %v", managers, tt.wantManagers)
			}
			for _, w := range tt.wantOwn {
				if !strings.Contains(own, w) {
					t.Errorf("imagebot's fields %s lack %s", own, w)
				}
			}
			for _, w := range tt.notOwn {
				if strings.Contains(own, w) {
					t.Errorf("imagebot's fields %s still have %s", own, w)
				}
			}
		})
	}
}

func TestApplyOrder(t *testing.T) {
	refs := []ObjectRef{
		{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration", Name: "hook"},
		{Group: "apps", Kind: "Deployment", Namespace: "a", Name: "web"},
		{Kind: "ConfigMap", Namespace: "a", Name: "cfg"},
		{Group: "example.dev", Kind: "Widget", Namespace: "a", Name: "w"},
		{Kind: "Namespace", Name: "a"},
		{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition", Name: "widgets.example.dev"},
		{Kind: "ServiceAccount", Namespace: "a", Name: "sa"},
	}
	sortRefs(refs)
	var got []string
	for _, r := range refs {
		got = append(got, r.Kind)
	}
	want := "Namespace CustomResourceDefinition ServiceAccount ConfigMap Deployment Widget ValidatingWebhookConfiguration"
	if strings.Join(got, " ") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
	if stageOf(ObjectRef{Group: "storage.k8s.io", Kind: "StorageClass"}.GroupKind(), true) != stageDefinitions {
		t.Fatal("a cluster-scoped class is not in the first stage")
	}
	if stageOf(ObjectRef{Group: "example.dev", Kind: "WidgetClass"}.GroupKind(), false) != stageObjects {
		t.Fatal("a namespaced *Class kind is in the first stage")
	}
}
