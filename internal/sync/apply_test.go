package sync_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	ksync "imagebot.dev/imagebot/internal/sync"
)

// TestCRDAndCustomResource applies a CRD and a custom resource of it in one render: the CRD
// goes first, is Established, discovery is refreshed, and the resource gets the default
// namespace from the CRD's scope (the cluster does not know the kind at render time).
func TestCRDAndCustomResource(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, 2*time.Minute)
	m := newManager(t, c.Config)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"widget.yaml": `apiVersion: test.imagebot.dev/v1
kind: Widget
metadata:
  name: w1
spec:
  size: 3
`,
		"crd.yaml": `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.imagebot.dev
spec:
  group: test.imagebot.dev
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`,
		"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: crd-test\n",
	})
	objs, err := m.Render(ctx, dir, nil, "crd-test")
	if err != nil {
		t.Fatal(err)
	}
	s := newSyncer(t, m, ksync.SyncerOptions{Name: "crd", DefaultNamespace: "crd-test"})
	res, err := s.Sync(ctx, "rev1", objs)
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Changes.Summary())
	}
	w := get(t, schema.GroupVersionResource{Group: "test.imagebot.dev", Version: "v1", Resource: "widgets"}, "crd-test", "w1")
	if got := nestedString(w, "spec", "size"); got != "3" {
		t.Fatalf("widget spec.size = %s", got)
	}
	if res.Changes.Count(ksync.Created) != 3 {
		t.Fatalf("want 3 created: %s", res.Changes.Summary())
	}
}

// TestNamespaceBeforeContents applies a ConfigMap listed before its Namespace in the file.
func TestNamespaceBeforeContents(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, time.Minute)
	m := newManager(t, c.Config)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"all.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: inside, namespace: ns-order}
data: {a: "1"}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns-order}
`})
	s := newSyncer(t, m, ksync.SyncerOptions{Name: "ns-order"})
	if res, err := s.SyncDir(ctx, "rev1", dir); err != nil {
		t.Fatalf("%v: %s", err, res.Changes.Summary())
	}
	if get(t, cmGVR, "ns-order", "inside") == nil {
		t.Fatal("configmap not applied")
	}
}

// TestImmutableField changes fields the API server refuses to update: reported without the
// opt-in, recreated with it.
func TestImmutableField(t *testing.T) {
	c := cluster(t)
	m := newManager(t, c.Config)
	deploy := func(sel, extra string) string {
		return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
` + extra + `spec:
  replicas: 1
  selector: {matchLabels: {app: ` + sel + `}}
  template:
    metadata: {labels: {app: ` + sel + `}}
    spec:
      containers: [{name: web, image: nginx:1.16}]
`
	}
	job := func(cmd, extra string) string {
		return `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
` + extra + `spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: busybox, command: [echo, ` + cmd + `]}]
`
	}
	const force = "  annotations: {imagebot.dev/force: \"true\"}\n"
	tests := []struct {
		name          string
		before, after string
		ref           ksync.ObjectRef
		wantRecreated bool
	}{
		{"deployment selector, no opt-in", deploy("a", ""), deploy("b", ""),
			ksync.ObjectRef{Group: "apps", Kind: "Deployment", Name: "web"}, false},
		{"deployment selector, opted in", deploy("a", ""), deploy("b", force),
			ksync.ObjectRef{Group: "apps", Kind: "Deployment", Name: "web"}, true},
		{"job template, no opt-in", job("one", ""), job("two", ""),
			ksync.ObjectRef{Group: "batch", Kind: "Job", Name: "migrate"}, false},
		{"job template, opted in", job("one", ""), job("two", force),
			ksync.ObjectRef{Group: "batch", Kind: "Job", Name: "migrate"}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxFor(t, 2*time.Minute)
			name := "immutable-" + string(rune('a'+i))
			ns := "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + name + "}\n---\n"
			tt.ref.Namespace = name
			s := newSyncer(t, m, ksync.SyncerOptions{Name: name, DefaultNamespace: name, Prune: true, HealthTimeout: -1})
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"a.yaml": ns + tt.before})
			if _, err := s.SyncDir(ctx, "rev1", dir); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, dir, map[string]string{"a.yaml": ns + tt.after})
			res, err := s.SyncDir(ctx, "rev2", dir)
			ch, _ := res.Changes.Find(tt.ref)
			if !tt.wantRecreated {
				if !errors.Is(err, ksync.ErrImmutable) || ch.Action != ksync.Failed {
					t.Fatalf("want ErrImmutable and a failed entry, got %v, %v", err, ch)
				}
				if !strings.Contains(err.Error(), tt.ref.String()+": apply: ") || !strings.Contains(err.Error(), "imagebot.dev/force") {
					t.Fatalf("error does not name the object and the opt-in: %v", err)
				}
				if res.Status != ksync.Stalled || res.LastAppliedRevision != "rev1" {
					t.Fatalf("status %s, last applied %q", res.Status, res.LastAppliedRevision)
				}
				return
			}
			if err != nil || ch.Action != ksync.Recreated {
				t.Fatalf("want recreated, got %v, %v", err, ch)
			}
		})
	}
}

// TestRestrictedCredentials applies with a ServiceAccount that may only manage ConfigMaps in
// one namespace: the ConfigMap applies, the Deployment fails with a clear error.
func TestRestrictedCredentials(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, 2*time.Minute)
	ensureNamespace(t, "rbac-a")
	cfg, _, err := c.ServiceAccountConfig(ctx, "rbac-a", "bot")
	if err != nil {
		t.Fatal(err)
	}
	cmRules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}}
	if err := c.Grant(ctx, "rbac-a", "bot", "rbac-a", cmRules); err != nil {
		t.Fatal(err)
	}
	if err := c.Grant(ctx, "rbac-a", "bot", inventoryNS, cmRules); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, cfg)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.16}]
`})
	s := newSyncer(t, m, ksync.SyncerOptions{Name: "restricted", DefaultNamespace: "rbac-a", HealthTimeout: -1})
	res, err := s.SyncDir(ctx, "rev1", dir)
	if err == nil {
		t.Fatal("want an error for the Deployment")
	}
	msg := err.Error()
	if !strings.Contains(msg, "Deployment/rbac-a/web: ") || !strings.Contains(msg, "forbidden") {
		t.Fatalf("error does not say Kind/ns/name: forbidden: %v", err)
	}
	if ch, _ := res.Changes.Find(ksync.ObjectRef{Kind: "ConfigMap", Namespace: "rbac-a", Name: "settings"}); ch.Action != ksync.Created {
		t.Fatalf("the ConfigMap should apply despite the Deployment: %v", ch)
	}
	if get(t, cmGVR, "rbac-a", "settings") == nil {
		t.Fatal("configmap not applied")
	}
	// The drift watcher cannot watch Deployments: it falls back to reads, without hanging.
	start := time.Now()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Start took %v with a forbidden watch", took)
	}
	res, err = s.SyncDir(ctx, "rev1", dir)
	if err == nil || !strings.Contains(err.Error(), "Deployment/rbac-a/web: ") {
		t.Fatalf("second sync: %v", err)
	}
	if ch, _ := res.Changes.Find(ksync.ObjectRef{Kind: "ConfigMap", Namespace: "rbac-a", Name: "settings"}); ch.Action != ksync.Unchanged {
		t.Fatalf("the ConfigMap on the second sync: %v", ch)
	}
	kubectl(t, "-n", "rbac-a", "patch", "configmap", "settings", "-p", `{"data":{"a":"drifted"}}`)
	eventually(t, 10*time.Second, "drift reverted with restricted credentials", func() string {
		if v := nestedString(get(t, cmGVR, "rbac-a", "settings"), "data", "a"); v != "1" {
			return "data.a=" + v
		}
		return ""
	})
}
