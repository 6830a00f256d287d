package sync_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	ksync "imagebot.dev/imagebot/internal/sync"
)

// TestHealth: a Deployment that rolls out is Current and the sync Ready; an object that never
// becomes Current (a PVC with no storage class to bind it) times the wait out: Stalled, with
// the object's health, and the revision still counts as applied.
func TestHealth(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, 2*time.Minute)
	const ns = "health"
	ensureNamespace(t, ns)
	m := newManager(t, c.Config)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"web.yaml": webDeployment(ns, 2)})
	s := newSyncer(t, m, ksync.SyncerOptions{Name: "health", HealthTimeout: 3 * time.Second})
	res, err := s.SyncDir(ctx, "rev1", dir)
	if err != nil || res.Status != ksync.Ready {
		t.Fatalf("rollout: %v, %s: %s", err, res.Status, res.Message)
	}
	if len(res.Health) != 1 || res.Health[0].Status != status.CurrentStatus {
		t.Fatalf("health %+v", res.Health)
	}
	writeFiles(t, dir, map[string]string{"pvc.yaml": `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: health}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`})
	res, err = s.SyncDir(ctx, "rev2", dir)
	if !errors.Is(err, ksync.ErrHealthTimeout) || res.Status != ksync.Stalled {
		t.Fatalf("want a health timeout, got %v (%s)", err, res.Status)
	}
	if !strings.Contains(err.Error(), "PersistentVolumeClaim/health/data: InProgress") {
		t.Fatalf("the error does not name the object and its status: %v", err)
	}
	if res.LastAppliedRevision != "rev2" {
		t.Fatalf("last applied %q, want rev2 (every object applied)", res.LastAppliedRevision)
	}
	// Without a wait, the same state is Reconciling.
	s2 := newSyncer(t, m, ksync.SyncerOptions{Name: "health", HealthTimeout: -1})
	if res, err = s2.SyncDir(ctx, "rev2", dir); err != nil || res.Status != ksync.Reconciling {
		t.Fatalf("snapshot: %v, %s", err, res.Status)
	}
}

// TestHealthInBackground: with WaitInBackground, Sync returns once applied (Reconciling) and
// the wait's outcome arrives as a second result; a newer sync ends the older wait, whose
// result never arrives.
func TestHealthInBackground(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, 2*time.Minute)
	const ns = "health-bg"
	ensureNamespace(t, ns)
	m := newManager(t, c.Config)
	dir := t.TempDir()
	pvc := `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: health-bg}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`
	writeFiles(t, dir, map[string]string{"pvc.yaml": pvc})
	results := make(chan *ksync.Result, 20)
	const timeout = 2 * time.Second
	s := newSyncer(t, m, ksync.SyncerOptions{Name: "health-bg", HealthTimeout: timeout, WaitInBackground: true,
		OnResult: func(r *ksync.Result) { results <- r }})
	next := func(what string) *ksync.Result {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(30 * time.Second):
			t.Fatalf("no result: %s", what)
			return nil
		}
	}
	// The PVC never binds: the sync returns Reconciling without an error (a wait would have
	// ended in ErrHealthTimeout), then the background wait reports the timeout.
	res, err := s.SyncDir(ctx, "rev1", dir)
	if err != nil || res.Status != ksync.Reconciling {
		t.Fatalf("rev1: %v, %s: %s", err, res.Status, res.Message)
	}
	if r := next("rev1 applied"); r != res {
		t.Fatalf("first result %+v, want the one Sync returned", r)
	}
	r := next("rev1's health")
	if r.Revision != "rev1" || r.Status != ksync.Stalled || !errors.Is(r.Err, ksync.ErrHealthTimeout) || r.LastAppliedRevision != "rev1" {
		t.Fatalf("rev1's health: %s %s %v (last applied %q)", r.Revision, r.Status, r.Err, r.LastAppliedRevision)
	}
	if s.Last() != r {
		t.Fatalf("Last is not the health result")
	}
	// rev2 waits on the PVC; rev3, at once, declares a Deployment only: rev2's wait ends
	// without a result, and rev3's reports the rollout.
	if res, err = s.SyncDir(ctx, "rev2", dir); err != nil || res.Status != ksync.Reconciling {
		t.Fatalf("rev2: %v, %s", err, res.Status)
	}
	rev2 := time.Now()
	if r := next("rev2 applied"); r != res {
		t.Fatalf("rev2's result %+v, want the one Sync returned", r)
	}
	writeFiles(t, dir, map[string]string{"pvc.yaml": "", "web.yaml": webDeployment(ns, 1)})
	if res, err = s.SyncDir(ctx, "rev3", dir); err != nil {
		t.Fatalf("rev3: %v", err)
	}
	if r := next("rev3 applied"); r != res {
		t.Fatalf("rev3's result %+v, want the one Sync returned", r)
	}
	for res.Status != ksync.Ready {
		res = next("rev3 rolled out")
		if res.Revision != "rev3" {
			t.Fatalf("a result for %s (%s: %v) after rev3's sync", res.Revision, res.Status, res.Err)
		}
	}
	// Past rev2's health timeout, its wait has still said nothing.
	time.Sleep(time.Until(rev2.Add(timeout + 500*time.Millisecond)))
	select {
	case r := <-results:
		t.Fatalf("a result after rev3 was Ready: %s %s %v", r.Revision, r.Status, r.Err)
	default:
	}
	if last := s.Last(); last.Revision != "rev3" || last.Status != ksync.Ready {
		t.Fatalf("last: %s %s", last.Revision, last.Status)
	}
}

// TestStuckRolloutResynced: the bot re-syncs the same revision every cycle, more often than
// HealthTimeout; a re-sync that changes nothing leaves the running wait alone, so a rollout
// that never comes is still reported Stalled.
func TestStuckRolloutResynced(t *testing.T) {
	c := cluster(t)
	ctx := ctxFor(t, 2*time.Minute)
	const ns = "health-stuck"
	ensureNamespace(t, ns)
	m := newManager(t, c.Config)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"pvc.yaml": `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: health-stuck}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`})
	stalled := make(chan *ksync.Result, 100)
	s := newSyncer(t, m, ksync.SyncerOptions{Name: "health-stuck", HealthTimeout: 2 * time.Second, WaitInBackground: true,
		OnResult: func(r *ksync.Result) {
			if r.Status == ksync.Stalled {
				stalled <- r
			}
		}})
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if _, err := s.SyncDir(ctx, "rev1", dir); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r := <-stalled:
		if !errors.Is(r.Err, ksync.ErrHealthTimeout) || r.Revision != "rev1" {
			t.Errorf("stalled: %s %v", r.Revision, r.Err)
		}
	default:
		t.Errorf("a PVC that never binds, re-synced every 500ms for 5s with HealthTimeout 2s: never Stalled (last %s)", s.Last().Status)
	}
}
