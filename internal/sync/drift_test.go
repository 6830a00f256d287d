package sync_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	ksync "imagebot.dev/imagebot/internal/sync"
)

func webDeployment(ns string, replicas int) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ` + ns + `}
spec:
  replicas: ` + strconv.Itoa(replicas) + `
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.16}]
`
}

// TestHPAOwnsReplicas: once an HPA targets the Deployment, imagebot neither sets nor reverts
// spec.replicas, on sync or as drift.
func TestHPAOwnsReplicas(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, 2*time.Minute)
	const ns = "hpa"
	ensureNamespace(t, ns)
	cs := kubernetes.NewForConfigOrDie(c.Config)
	s := newSyncer(t, newManager(t, c.Config), ksync.SyncerOptions{Name: "hpa", HealthTimeout: -1, ResyncInterval: time.Hour})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"web.yaml": webDeployment(ns, 1)})
	if _, err := s.SyncDir(ctx, "rev1", dir); err != nil {
		t.Fatal(err)
	}
	// Someone adds an HPA (not in git), and it scales the Deployment to 3 through the scale
	// subresource, as the HPA controller does.
	_, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 5,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	scale := func(n int32) {
		_, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: n}},
			metav1.UpdateOptions{FieldManager: "horizontal-pod-autoscaler-test"})
		if err != nil {
			t.Fatal(err)
		}
	}
	scale(3)
	replicas := func() string { return nestedString(get(t, deployGVR, ns, "web"), "spec", "replicas") }
	time.Sleep(1500 * time.Millisecond) // past the drift watcher's debounce
	if r := replicas(); r != "3" {
		t.Fatalf("the drift watcher reverted the HPA's replicas to %s", r)
	}
	res, err := s.SyncDir(ctx, "rev1", dir)
	if err != nil {
		t.Fatal(err)
	}
	if r := replicas(); r != "3" {
		t.Fatalf("sync reverted the HPA's replicas to %s (%s)", r, res.Changes.Summary())
	}
	// A new revision (an image update) still leaves replicas alone.
	writeFiles(t, dir, map[string]string{"web.yaml": strings.Replace(webDeployment(ns, 1), "nginx:1.16", "nginx:1.17", 1)})
	if _, err := s.SyncDir(ctx, "rev2", dir); err != nil {
		t.Fatal(err)
	}
	if r := replicas(); r != "3" {
		t.Fatalf("a new revision reset the HPA's replicas to %s", r)
	}
	scale(2)
	time.Sleep(1500 * time.Millisecond)
	if r := replicas(); r != "2" {
		t.Fatalf("the drift watcher reverted the HPA's second scaling to %s", r)
	}
	// Image drift on the same Deployment is still reverted.
	kubectl(t, "-n", ns, "set", "image", "deployment/web", "web=nginx:hacked")
	eventually(t, 10*time.Second, "image reverted", func() string {
		if img := containerImage(get(t, deployGVR, ns, "web"), "web"); img != "nginx:1.17" {
			return img
		}
		return ""
	})
	if r := replicas(); r != "2" {
		t.Fatalf("correcting the image reset replicas to %s", r)
	}
}

// TestTakeOverFromKubectl: an object first created with client-side `kubectl apply`, then
// edited with `kubectl patch`, ends up exactly as git declares it, owned by imagebot alone.
func TestTakeOverFromKubectl(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, time.Minute)
	const ns = "takeover"
	ensureNamespace(t, ns)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: takeover}\ndata: {a: \"1\", old: \"x\"}\n"})
	kubectl(t, "apply", "-f", dir+"/cm.yaml")
	kubectl(t, "-n", ns, "patch", "configmap", "settings", "-p", `{"data":{"edited":"y"}}`)

	writeFiles(t, dir, map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: takeover}\ndata: {a: \"2\"}\n"})
	s := newSyncer(t, newManager(t, c.Config), ksync.SyncerOptions{Name: "takeover", HealthTimeout: -1})
	res, err := s.SyncDir(ctx, "rev1", dir)
	if err != nil {
		t.Fatal(err)
	}
	cm := get(t, cmGVR, ns, "settings")
	data, _ := cm.Object["data"].(map[string]any)
	if len(data) != 1 || data["a"] != "2" {
		t.Fatalf("data = %v, want only a=2 (%s)", data, res.Changes.Summary())
	}
	if _, ok := cm.GetAnnotations()["kubectl.kubernetes.io/last-applied-configuration"]; ok {
		t.Fatal("kubectl's last-applied-configuration annotation survived")
	}
	for _, e := range cm.GetManagedFields() {
		if strings.HasPrefix(e.Manager, "kubectl") {
			t.Fatalf("manager %s (%s) still owns fields", e.Manager, e.Operation)
		}
	}
	// A second sync writes nothing.
	if res, err = s.SyncDir(ctx, "rev1", dir); err != nil || res.Changes.Count(ksync.Unchanged) != 1 {
		t.Fatalf("second sync: %v %s", err, res.Changes.Summary())
	}

	// kubectl edit (manager kubectl-edit) adds a key git does not declare: while the drift
	// watcher runs, it is taken over and removed.
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	editor := filepath.Join(t.TempDir(), "editor.sh")
	writeFiles(t, filepath.Dir(editor), map[string]string{"editor.sh": "#!/bin/sh\nsed -i 's/^  a: \"2\"$/  a: \"2\"\\n  added: by-hand/' \"$1\"\n"})
	if err := os.Chmod(editor, 0o755); err != nil {
		t.Fatal(err)
	}
	if out := kubectlEnv(t, []string{"KUBE_EDITOR=" + editor}, "-n", ns, "edit", "configmap", "settings"); !strings.Contains(out, "edited") {
		t.Fatalf("kubectl edit made no change: %s", out)
	}
	edited := false
	eventually(t, 10*time.Second, "the key added with kubectl edit removed", func() string {
		data, _ := get(t, cmGVR, ns, "settings").Object["data"].(map[string]any)
		if _, ok := data["added"]; ok {
			edited = true
			return "still there"
		}
		if !edited && len(data) == 1 {
			// Either the edit has not landed yet or it was already reverted; the managed
			// fields tell: kubectl-edit must not be left owning anything.
			for _, e := range get(t, cmGVR, ns, "settings").GetManagedFields() {
				if e.Manager == "kubectl-edit" {
					return "kubectl-edit still owns fields"
				}
			}
		}
		return ""
	})
	if data, _ := get(t, cmGVR, ns, "settings").Object["data"].(map[string]any); len(data) != 1 || data["a"] != "2" {
		t.Fatalf("data after the edit was reverted: %v", data)
	}
}

// TestNoWriteWhenUnchanged: a sync of an unchanged revision makes no write, through LISTs
// when the watcher is off and without any request but the inventory's when it runs; status
// changes (a rollout) are not drift.
func TestNoWriteWhenUnchanged(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, 2*time.Minute)
	var n counter
	m := newManager(t, countedConfig(c.Config, &n))
	const ns = "nowrite"
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ns.yaml":  "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n",
		"app.yaml": webDeployment(ns, 2) + "---\n" + configMaps(ns, "c1", "c2") + "---\n" + secretDoc(ns),
	})
	for _, mode := range []ksync.CompareMode{ksync.CompareCached, ksync.CompareDryRun} {
		var corrections atomic.Int32
		s := newSyncer(t, m, ksync.SyncerOptions{Name: "nowrite", ResyncInterval: time.Hour, Compare: mode,
			OnResult: func(r *ksync.Result) {
				if strings.HasPrefix(r.Message, "drift") {
					corrections.Add(1)
				}
			}})
		if _, err := s.SyncDir(ctx, "rev1", dir); err != nil {
			t.Fatal(err)
		}
		n.reset()
		res, err := s.SyncDir(ctx, "rev1", dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("mode %d, watcher off: %s; %s", mode, res.Changes.Summary(), n.String())
		if n.writes.Load() != 0 || res.Changes.Count(ksync.Unchanged) != 5 {
			t.Fatalf("mode %d: an unchanged sync wrote: %s; %s", mode, n.String(), res.Changes.Summary())
		}
		if mode == ksync.CompareCached && n.dryRuns.Load() != 0 {
			t.Fatalf("cached comparison made dry runs: %s", n.String())
		}
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		n.reset()
		if _, err := s.SyncDir(ctx, "rev1", dir); err != nil {
			t.Fatal(err)
		}
		t.Logf("mode %d, watcher on: %s", mode, n.String())
		if mode == ksync.CompareCached && n.all.Load() != 1 {
			t.Fatalf("with the watcher's caches, an unchanged sync should make 1 request (the inventory), made %s", n.String())
		}
		// Status churn (pods of a rollout) is not drift.
		kubectl(t, "-n", ns, "rollout", "restart", "deployment/web")
		time.Sleep(1500 * time.Millisecond)
		s.Stop()
		// kubectl rollout restart (manager kubectl-rollout) adds an annotation git does not
		// declare: not drift (undoing it would restart the pods again); the status updates of
		// the rollout are not drift either.
		if got := corrections.Load(); got != 0 {
			t.Fatalf("mode %d: %d drift corrections after a rollout restart, want none", mode, got)
		}
	}
}

func secretDoc(ns string) string {
	return "apiVersion: v1\nkind: Secret\nmetadata: {name: s1, namespace: " + ns + "}\nstringData: {password: hunter2}\n"
}

// TestQuickSuccessiveSyncs: syncs right after one another, with the watcher's caches in use,
// never compare with a copy the previous sync already replaced (a rollback right after an
// update must be applied).
func TestQuickSuccessiveSyncs(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, 2*time.Minute)
	ensureNamespace(t, "quick")
	s := newSyncer(t, newManager(t, c.Config), ksync.SyncerOptions{Name: "quick", HealthTimeout: -1, ResyncInterval: time.Hour})
	version := func(v string) []*unstructured.Unstructured {
		return []*unstructured.Unstructured{{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "flip", "namespace": "quick"}, "data": map[string]any{"v": v}}}}
	}
	if _, err := s.Sync(ctx, "a", version("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		v := []string{"a", "b"}[i%2]
		res, err := s.Sync(ctx, v, version(v))
		if err != nil {
			t.Fatal(err)
		}
		if got := nestedString(get(t, cmGVR, "quick", "flip"), "data", "v"); got != v {
			t.Fatalf("sync %d of %s: live has %s (%s)", i, v, got, res.Changes.Summary())
		}
	}
}
