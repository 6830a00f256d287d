package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/config"
	"imagebot.dev/imagebot/internal/notify"
	ksync "imagebot.dev/imagebot/internal/sync"
	"imagebot.dev/imagebot/internal/testenv"
)

// TestClusterSyncerReports: the cluster syncer's results reach the repository's report: a
// failing sync is notified once, not again while it fails the same way, and again when it
// fails after having recovered; metrics count results and objects; the status tells the last
// result.
func TestClusterSyncerReports(t *testing.T) {
	env := testenv.New(t, testenv.Options{Cluster: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	events := make(chan notify.Event, 10)
	metrics, err := newLoopMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rep := &syncReport{repo: "notified", notify: func(e notify.Event) { events <- e }, metrics: metrics}
	s := startClusterSyncer(t, ctx, env, testRepo(t, "notified", "  sync: {healthTimeout: 1m}\n"), rep.observe)
	dir := t.TempDir()
	writeIn := func(t *testing.T, dir, name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write := func(body string) { writeIn(t, dir, "app.yaml", body) }
	good := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: default}\ndata: {a: b}\n"
	bad := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: default}\ndata: {\"bad key\": b}\n"
	notified := func() []notify.Event {
		var got []notify.Event
		for {
			select {
			case e := <-events:
				got = append(got, e)
			default:
				return got
			}
		}
	}

	write(bad) // not a valid data key: the API server refuses it
	for i := range 2 {
		if err := s.Sync(ctx, dir, "rev-bad"); err == nil || !strings.Contains(err.Error(), "bad key") {
			t.Fatalf("sync %d of an invalid ConfigMap: %v", i, err)
		}
	}
	got := notified()
	if len(got) != 1 || got[0].Kind != notify.SyncFailed || got[0].Repository != "notified" ||
		got[0].Revision != "rev-bad" || !strings.Contains(got[0].Error, "bad key") {
		t.Fatalf("two syncs failing alike: want one sync-failed notification, got %+v", got)
	}
	write(good)
	if err := s.Sync(ctx, dir, "rev-good"); err != nil {
		t.Fatal(err)
	}
	write(bad)
	if err := s.Sync(ctx, dir, "rev-bad-again"); err == nil {
		t.Fatal("the failing sync passed")
	}
	if got := notified(); len(got) != 1 || got[0].Revision != "rev-bad-again" {
		t.Fatalf("failing again after a good sync: want one notification, got %+v", got)
	}
	if st := rep.status(); st == nil || st.Revision != "rev-bad-again" || st.Status != "Stalled" || st.LastAppliedRevision != "rev-good" ||
		!strings.Contains(st.Message, "bad key") {
		t.Fatalf("status after a failed sync: %+v", st)
	}
	for _, c := range []struct {
		what string
		got  float64
		want float64
	}{
		{"failed syncs", value(t, metrics.syncs.WithLabelValues("notified", "error")), 3},
		{"good syncs", value(t, metrics.syncs.WithLabelValues("notified", "ok")), 1},
		{"objects created", value(t, metrics.syncObjects.WithLabelValues("notified", "created")), 1},
		{"Stalled", value(t, metrics.syncStatus.WithLabelValues("notified", "Stalled")), 1},
		{"Ready", value(t, metrics.syncStatus.WithLabelValues("notified", "Ready")), 0},
	} {
		if c.got != c.want {
			t.Errorf("metrics: %s = %v, want %v", c.what, c.got, c.want)
		}
	}

	// A Deployment's rollout is waited for in the background.
	write(good)
	writeIn(t, dir, "web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\n"+
		"spec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n"+
		"    spec: {containers: [{name: web, image: nginx:1.16}]}\n")
	start := time.Now()
	if err := s.Sync(ctx, dir, "rev-web"); err != nil {
		t.Fatal(err)
	}
	t.Logf("a sync that starts a rollout returned after %v", time.Since(start))
	if got := notified(); len(got) != 0 {
		t.Fatalf("notifications for a good sync: %+v", got)
	}
}

// value reads a counter's or a gauge's value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestDriftAfterFailedSync: a sync that fails on one object still starts the drift watcher,
// so the objects it did apply are held as declared.
func TestDriftAfterFailedSync(t *testing.T) {
	env := testenv.New(t, testenv.Options{Cluster: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startClusterSyncer(t, ctx, env, testRepo(t, "partly", ""), nil)
	dir := t.TempDir()
	body := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: default}\ndata: {a: b}\n---\n" +
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: refused, namespace: default}\ndata: {\"bad key\": b}\n"
	if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, dir, "rev1"); err == nil {
		t.Fatal("the sync of an invalid ConfigMap passed")
	}
	cms := env.Cluster.Client.CoreV1().ConfigMaps("default")
	cm, err := cms.Get(ctx, "held", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the valid object was not applied: %v", err)
	}
	cm.Data["a"] = "drifted"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		cm, err := cms.Get(ctx, "held", metav1.GetOptions{})
		if err == nil && cm.Data["a"] == "b" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the drifted ConfigMap was not put back: %v %v", cm.Data, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testRepo is a minimal repository config named name, with spec lines added.
func testRepo(t testing.TB, name, spec string) *config.Repository {
	t.Helper()
	repos, err := config.Parse(name+".yaml", []byte(`apiVersion: imagebot.dev/v1alpha1
kind: Repository
metadata: {name: `+name+`}
spec:
  git: {url: "ssh://git@127.0.0.1/r.git", auth: {sshKeyFile: /dev/null, knownHostsFile: /dev/null}}
`+spec))
	if err != nil {
		t.Fatal(err)
	}
	return repos[0]
}

// startClusterSyncer is ClusterSyncers' syncer for repo on env's cluster, stopped with the
// test.
func startClusterSyncer(t *testing.T, ctx context.Context, env *testenv.Env, repo *config.Repository, onResult func(*ksync.Result)) bot.Syncer {
	t.Helper()
	factory, err := ClusterSyncers(ctx, env.Cluster.Config, "default", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := factory(repo, onResult)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.(interface{ Stop() }).Stop)
	return s
}

// TestSyncFailureNotifiedOnce: a rollout that keeps timing out is one failure (its message
// lists objects in other states each time, and syncs in between are Reconciling), told once;
// after a Ready result, a failure is told again.
func TestSyncFailureNotifiedOnce(t *testing.T) {
	metrics, err := newLoopMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var told []notify.Event
	rep := &syncReport{repo: "r", notify: func(e notify.Event) { told = append(told, e) }, metrics: metrics}
	timeout := func(objects string) *ksync.Result {
		return &ksync.Result{Revision: "rev1", Status: ksync.Stalled, Changes: &ksync.ChangeSet{},
			Err: fmt.Errorf("%w after 2m: %s", ksync.ErrHealthTimeout, objects)}
	}
	for _, res := range []*ksync.Result{
		timeout("Deployment/a: InProgress"),
		{Revision: "rev1", Status: ksync.Reconciling, Changes: &ksync.ChangeSet{}},
		timeout("Deployment/a: InProgress, Pod/b: Failed"),
	} {
		rep.observe(res)
	}
	if len(told) != 1 {
		t.Fatalf("a rollout timing out again: %d notifications, want 1", len(told))
	}
	rep.observe(&ksync.Result{Revision: "rev1", Status: ksync.Ready, Changes: &ksync.ChangeSet{}})
	rep.observe(timeout("Deployment/a: InProgress"))
	if len(told) != 2 {
		t.Fatalf("failing again after Ready: %d notifications, want 2", len(told))
	}
}
