package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	gosync "sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/config"
	"imagebot.dev/imagebot/internal/notify"
	ksync "imagebot.dev/imagebot/internal/sync"
)

// ClusterSyncers returns a SyncerFactory that reconciles each repository into the cluster
// cfg reaches, recording inventories in namespace (which must exist). Each repository's
// drift watcher starts after its first successful sync and stops with ctx.
func ClusterSyncers(ctx context.Context, cfg *rest.Config, namespace string, log *slog.Logger) (SyncerFactory, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := ksync.New(cfg, ksync.Options{})
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	// Kubernetes Events on the objects a sync changes (a Deployment given a new image, a
	// drifted object put back), recorded as component "imagebot".
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	bc := record.NewBroadcaster(record.WithContext(ctx))
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	go func() { <-ctx.Done(); bc.Shutdown() }()
	recorder := bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "imagebot"})
	return func(r *config.Repository, onResult func(*ksync.Result)) (bot.Syncer, error) {
		s := r.Spec.Sync
		syncer, err := ksync.NewSyncer(m, ksync.SyncerOptions{
			Name: r.Metadata.Name, InventoryNamespace: namespace, DefaultNamespace: s.DefaultNamespace,
			Paths: r.Spec.Git.Paths, Prune: *s.Prune, MaxPruneFraction: s.MaxPruneFraction, PruneKinds: pruneKinds(s.PruneKinds),
			HealthTimeout: s.HealthTimeout.Duration, ResyncInterval: s.Interval.Duration, Recorder: recorder,
			// The bot goes on (the next tag, the next commit) while a rollout proceeds.
			WaitInBackground: true,
			OnResult: func(res *ksync.Result) {
				switch {
				case res.Err != nil:
					log.Error("sync failed", "repository", r.Metadata.Name, "revision", res.Revision, "err", res.Err)
				case res.Changes != nil && len(res.Changes.Changed()) > 0:
					log.Info("synced", "repository", r.Metadata.Name, "revision", res.Revision, "status", string(res.Status),
						"changes", res.Changes.Summary())
				}
				if onResult != nil {
					onResult(res)
				}
			},
		})
		if err != nil {
			return nil, err
		}
		return &clusterSyncer{ctx: ctx, s: syncer}, nil
	}, nil
}

// clusterSyncer adapts a sync.Syncer to the bot: SyncDir per revision, and the drift
// watcher and periodic resync started after the first sync, whatever its outcome (a sync
// with one failed object still keeps the others as declared).
type clusterSyncer struct {
	ctx   context.Context
	s     *ksync.Syncer
	start gosync.Once
}

func (c *clusterSyncer) Sync(ctx context.Context, dir, revision string) error {
	res, err := c.s.SyncDir(ctx, revision, dir)
	if err == nil && res != nil {
		err = res.Err
	}
	c.start.Do(func() {
		if serr := c.s.Start(c.ctx); serr != nil {
			err = errors.Join(err, serr)
		}
	})
	return err
}

// massPruner is a syncer whose prune limit can be lifted for one sync.
type massPruner interface {
	AllowMassPruneOnce()
	DisallowMassPrune()
}

// AllowMassPruneOnce lifts the prune limit for the next sync; DisallowMassPrune withdraws it.
func (c *clusterSyncer) AllowMassPruneOnce() { c.s.AllowMassPruneOnce() }
func (c *clusterSyncer) DisallowMassPrune()  { c.s.DisallowMassPrune() }

// Stop ends the drift watcher.
func (c *clusterSyncer) Stop() { c.s.Stop() }

// SyncStatus is a repository's last sync result, in /api/v1/status.
type SyncStatus struct {
	Repository          string    `json:"repository"`
	Revision            string    `json:"revision"`                      // the commit last attempted
	LastAppliedRevision string    `json:"lastAppliedRevision,omitempty"` // the last commit applied whole
	Status              string    `json:"status"`                        // Ready, Reconciling or Stalled
	Message             string    `json:"message,omitempty"`
	Time                time.Time `json:"time"` // when the result was made
	Changes             string    `json:"changes,omitempty"`
	NotCurrent          []string  `json:"notCurrent,omitempty"` // objects not (yet) Current: kind/namespace/name: status
}

// syncReport takes a repository's sync results (the bot's syncs, resyncs, drift corrections
// and rollout outcomes): metrics, the status, and a sync-failed notification when a failure
// starts or changes (not again while a sync keeps failing the same way).
type syncReport struct {
	repo        string
	notify      func(notify.Event)
	metrics     *loopMetrics
	overridable massPruner // the syncer, when it can lift its prune limit (nil: it cannot)

	mu      gosync.Mutex
	last    *ksync.Result
	lastErr string // the failure last notified
}

func (s *syncReport) observe(res *ksync.Result) {
	s.metrics.observeSync(s.repo, res)
	s.mu.Lock()
	s.last = res
	notifyNow := false
	switch {
	case res.Err != nil:
		key := failureKey(res)
		notifyNow, s.lastErr = key != s.lastErr, key
	case res.Status == ksync.Ready:
		s.lastErr = "" // recovered: the next failure is news
	}
	s.mu.Unlock()
	if notifyNow && s.notify != nil {
		s.notify(notify.Event{Kind: notify.SyncFailed, Repository: s.repo, Revision: res.Revision,
			Summary: "could not apply the commit to the cluster", Error: res.Err.Error()})
	}
}

// failureKey is what tells one failure from another: a rollout that times out again lists
// objects in other states each time, but it is the same failure of the same revision.
func failureKey(res *ksync.Result) string {
	if errors.Is(res.Err, ksync.ErrHealthTimeout) || errors.Is(res.Err, ksync.ErrUnhealthy) {
		return "health of " + res.Revision
	}
	return res.Err.Error()
}

// status is the last result's summary (nil before the first, or without sync).
func (s *syncReport) status() *SyncStatus {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	res := s.last
	s.mu.Unlock()
	if res == nil {
		return nil
	}
	st := &SyncStatus{Repository: s.repo, Revision: res.Revision, LastAppliedRevision: res.LastAppliedRevision,
		Status: string(res.Status), Message: res.Message, Time: res.Started.Add(res.Duration)}
	if res.Changes != nil && len(res.Changes.Entries) > 0 {
		st.Changes = res.Changes.Summary()
	}
	for _, h := range res.Health {
		if h.Status != status.CurrentStatus {
			st.NotCurrent = append(st.NotCurrent, fmt.Sprintf("%s: %s", h.Ref, h.Status))
		}
	}
	return st
}

// pruneKinds maps the config's kind names to the group-kinds of ksync.ProtectedKinds.
func pruneKinds(names []string) []schema.GroupKind {
	var out []schema.GroupKind
	for _, gk := range ksync.ProtectedKinds {
		if slices.Contains(names, gk.Kind) {
			out = append(out, gk)
		}
	}
	return out
}
