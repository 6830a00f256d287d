package sync_test

import (
	"fmt"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	ksync "imagebot.dev/imagebot/internal/sync"
)

const seedNamespace = `apiVersion: v1
kind: Namespace
metadata:
  name: my-demo
`

const seedConfigMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: fluxdemo-config
  namespace: my-demo
data:
  greeting: hello
`

func seedDeployment(flaskTag string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: fluxdemo
  namespace: my-demo
  annotations:
    flux.weave.works/automated: "true"
    flux.weave.works/tag.flask: glob:develop-v*
spec:
  replicas: 1
  selector:
    matchLabels:
      app: fluxdemo
  template:
    metadata:
      labels:
        app: fluxdemo
    spec:
      containers:
      - name: nginx
        image: nginx:1.16
        ports:
        - containerPort: 80
      - name: flask
        image: registry.example.com/team/flaskapp:` + flaskTag + `
        resources:
          requests:
            cpu: "0.1"
            memory: 64Mi
`
}

// seedFile is apps/flask.yaml: the multi-document file of the user's day.
func seedFile(flaskTag string, withConfigMap bool) string {
	docs := []string{seedNamespace}
	if withConfigMap {
		docs = append(docs, seedConfigMap)
	}
	docs = append(docs, seedDeployment(flaskTag))
	return strings.Join(docs, "---\n")
}

// TestSeedWalkthrough is the user's day at the sync level: apply (pods Running), scale and
// image drift reverted, a deleted object recreated, a commit that removes a manifest prunes
// it, an image update, and a rollback to an older set of manifests.
func TestSeedWalkthrough(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, 5*time.Minute)
	cs := kubernetes.NewForConfigOrDie(c.Config)

	// A real event recorder, as the daemon will wire it.
	bc := record.NewBroadcaster()
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	t.Cleanup(bc.Shutdown)
	rec := bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "imagebot"})

	var (
		mu      stdsync.Mutex
		results []*ksync.Result
	)
	s := newSyncer(t, newManager(t, c.Config), ksync.SyncerOptions{
		Name: "seed", Prune: true, Recorder: rec, ResyncInterval: time.Hour,
		OnResult: func(r *ksync.Result) { mu.Lock(); results = append(results, r); mu.Unlock() },
	})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"apps/flask.yaml": seedFile("develop-v1.8.0", true)})

	// 1. Apply: the namespace first, then its contents; pods Running.
	res, err := s.SyncDir(ctx, "c0ffee01", dir)
	if err != nil {
		t.Fatalf("first sync: %v\n%v", err, res.Changes.Entries)
	}
	if res.Status != ksync.Ready || res.LastAppliedRevision != "c0ffee01" {
		t.Fatalf("first sync: status %s, last applied %q: %s", res.Status, res.LastAppliedRevision, res.Message)
	}
	if got := res.Changes.Count(ksync.Created); got != 3 {
		t.Fatalf("first sync created %d objects, want 3: %s", got, res.Changes.Summary())
	}
	pods, err := cs.CoreV1().Pods("my-demo").List(ctx, metav1.ListOptions{LabelSelector: "app=fluxdemo"})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning {
		t.Fatalf("want 1 Running pod of fluxdemo, got %v (err %v)", podPhases(pods), err)
	}
	eventually(t, 10*time.Second, "a Created event for the Deployment", func() string {
		evs, err := cs.CoreV1().Events("my-demo").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=fluxdemo,reason=Created"})
		if err != nil {
			return err.Error()
		}
		if len(evs.Items) == 0 {
			return "no event yet"
		}
		return ""
	})

	// A second sync of the same revision writes nothing.
	res, err = s.SyncDir(ctx, "c0ffee01", dir)
	if err != nil || res.Changes.Count(ksync.Unchanged) != 3 {
		t.Fatalf("second sync: %v: %s", err, res.Changes.Summary())
	}

	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// 2. Scale drift reverted.
	kubectl(t, "-n", "my-demo", "scale", "deployment/fluxdemo", "--replicas=4")
	took := eventually(t, 10*time.Second, "replicas back to 1", func() string {
		if r := nestedString(get(t, deployGVR, "my-demo", "fluxdemo"), "spec", "replicas"); r != "1" {
			return "replicas " + r
		}
		return ""
	})
	t.Logf("kubectl scale reverted in %v", took)

	// 3. Image edit reverted.
	kubectl(t, "-n", "my-demo", "set", "image", "deployment/fluxdemo", "flask=registry.example.com/team/flaskapp:hacked")
	took = eventually(t, 10*time.Second, "flask image back to develop-v1.8.0", func() string {
		d := get(t, deployGVR, "my-demo", "fluxdemo")
		if img := containerImage(d, "flask"); img != "registry.example.com/team/flaskapp:develop-v1.8.0" {
			return "image " + img
		}
		return ""
	})
	t.Logf("kubectl set image reverted in %v", took)

	// 4. A deleted object is recreated.
	uid := get(t, cmGVR, "my-demo", "fluxdemo-config").GetUID()
	kubectl(t, "-n", "my-demo", "delete", "configmap", "fluxdemo-config")
	took = eventually(t, 10*time.Second, "configmap recreated", func() string {
		cm := get(t, cmGVR, "my-demo", "fluxdemo-config")
		if cm == nil || cm.GetUID() == uid {
			return "not recreated"
		}
		return ""
	})
	t.Logf("kubectl delete reverted in %v", took)

	// 5. A commit that removes a manifest prunes it.
	writeFiles(t, dir, map[string]string{"apps/flask.yaml": seedFile("develop-v1.8.0", false)})
	res, err = s.SyncDir(ctx, "c0ffee02", dir)
	if err != nil {
		t.Fatalf("sync without the configmap: %v", err)
	}
	if c, _ := res.Changes.Find(ksync.ObjectRef{Kind: "ConfigMap", Namespace: "my-demo", Name: "fluxdemo-config"}); c.Action != ksync.Deleted {
		t.Fatalf("configmap: %v, want deleted; %s", c, res.Changes.Summary())
	}
	if get(t, cmGVR, "my-demo", "fluxdemo-config") != nil {
		t.Fatal("configmap still there after the prune")
	}
	time.Sleep(300 * time.Millisecond) // a pruned object is not drift: it must stay gone
	if get(t, cmGVR, "my-demo", "fluxdemo-config") != nil {
		t.Fatal("the drift watcher recreated a pruned configmap")
	}

	// 6. An image update (imagebot's own commit) rolls the Deployment.
	writeFiles(t, dir, map[string]string{"apps/flask.yaml": seedFile("develop-v1.8.1", false)})
	if res, err = s.SyncDir(ctx, "c0ffee03", dir); err != nil || res.Status != ksync.Ready {
		t.Fatalf("image update: %v %s", err, res.Message)
	}
	if img := containerImage(get(t, deployGVR, "my-demo", "fluxdemo"), "flask"); !strings.HasSuffix(img, ":develop-v1.8.1") {
		t.Fatalf("image after update: %s", img)
	}

	// 7. Rollback to the first set of manifests: the configmap comes back, the image too.
	writeFiles(t, dir, map[string]string{"apps/flask.yaml": seedFile("develop-v1.8.0", true)})
	if res, err = s.SyncDir(ctx, "c0ffee01", dir); err != nil || res.Status != ksync.Ready {
		t.Fatalf("rollback: %v %s", err, res.Message)
	}
	if get(t, cmGVR, "my-demo", "fluxdemo-config") == nil {
		t.Fatal("rollback did not bring the configmap back")
	}
	if img := containerImage(get(t, deployGVR, "my-demo", "fluxdemo"), "flask"); !strings.HasSuffix(img, ":develop-v1.8.0") {
		t.Fatalf("image after rollback: %s", img)
	}
	inv, err := newManager(t, c.Config).ReadInventory(ctx, inventoryNS, "seed")
	if err != nil || len(inv.Entries) != 3 || inv.LastAppliedRevision != "c0ffee01" {
		t.Fatalf("inventory after rollback: %+v (err %v)", inv, err)
	}
	var corrections int
	mu.Lock()
	defer mu.Unlock()
	for _, r := range results {
		if strings.HasPrefix(r.Message, "drift corrected") {
			corrections++
		}
	}
	if corrections < 3 {
		t.Fatalf("%d drift corrections reported, want at least 3", corrections)
	}
}

func podPhases(pods *corev1.PodList) []string {
	if pods == nil {
		return nil
	}
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Name+"="+string(p.Status.Phase))
	}
	return out
}

func containerImage(d *unstructured.Unstructured, name string) string {
	if d == nil {
		return "<absent>"
	}
	spec, _ := d.Object["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	ps, _ := tmpl["spec"].(map[string]any)
	cs, _ := ps["containers"].([]any)
	for _, c := range cs {
		cm, _ := c.(map[string]any)
		if cm["name"] == name {
			return fmt.Sprint(cm["image"])
		}
	}
	return "<no container " + name + ">"
}
