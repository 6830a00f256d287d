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
