package daemon

import (
	"context"
	"fmt"
	"log/slog"
	gosync "sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

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
	return func(r *config.Repository, notifyFn func(notify.Event)) (bot.Syncer, error) {
		s := r.Spec.Sync
		var failing gosync.Mutex
		lastErr := "" // the failure last notified: a failure is notified when it starts or changes
		syncer, err := ksync.NewSyncer(m, ksync.SyncerOptions{
			Name: r.Metadata.Name, InventoryNamespace: namespace, DefaultNamespace: s.DefaultNamespace,
			Paths: r.Spec.Git.Paths, Prune: *s.Prune, MaxPruneFraction: s.MaxPruneFraction,
			HealthTimeout: s.HealthTimeout.Duration, ResyncInterval: s.Interval.Duration, Recorder: recorder,
			// The bot goes on (the next tag, the next commit) while a rollout proceeds.
			WaitInBackground: true,
			OnResult: func(res *ksync.Result) {
				failing.Lock()
				notifyNow := res.Err != nil && res.Err.Error() != lastErr
				if res.Err != nil {
					lastErr = res.Err.Error()
				} else {
					lastErr = ""
				}
				failing.Unlock()
				if res.Err != nil {
					log.Error("sync failed", "repository", r.Metadata.Name, "revision", res.Revision, "err", res.Err)
					if notifyNow && notifyFn != nil {
						notifyFn(notify.Event{Kind: notify.SyncFailed, Repository: r.Metadata.Name, Revision: res.Revision,
							Summary: "could not apply the commit to the cluster", Error: res.Err.Error()})
					}
					return
				}
				if res.Changes != nil && len(res.Changes.Changed()) > 0 {
					log.Info("synced", "repository", r.Metadata.Name, "revision", res.Revision, "status", string(res.Status),
						"changes", res.Changes.Summary())
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
// watcher started once the first sync has applied.
type clusterSyncer struct {
	ctx   context.Context
	s     *ksync.Syncer
	start gosync.Once
}

func (c *clusterSyncer) Sync(ctx context.Context, dir, revision string) error {
	res, err := c.s.SyncDir(ctx, revision, dir)
	if err != nil {
		return err
	}
	if res != nil && res.Err != nil {
		return res.Err
	}
	var startErr error
	c.start.Do(func() { startErr = c.s.Start(c.ctx) })
	return startErr
}

// Stop ends the drift watcher.
func (c *clusterSyncer) Stop() { c.s.Stop() }
