package sync_test

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/client-go/rest"

	ksync "imagebot.dev/imagebot/internal/sync"
)

// The daemon's use: one Manager per cluster, one Syncer per repository path; render the
// checkout at each new commit and sync it, and keep the drift watcher running in between.
// (Not run: it needs a cluster; the tests do the same against a real one.)
func ExampleSyncer() {
	var cfg *rest.Config // in-cluster or from a kubeconfig
	ctx := context.Background()

	m, err := ksync.New(cfg, ksync.Options{})
	if err != nil {
		panic(err)
	}
	s, err := ksync.NewSyncer(m, ksync.SyncerOptions{
		Name:  "fluxdemo-apps", // owner label value, inventory imagebot-inv-fluxdemo-apps
		Paths: []string{"apps"},
		Prune: true,
		OnResult: func(r *ksync.Result) {
			slog.Info("sync", "revision", r.Revision, "status", r.Status, "changes", r.Changes.Summary())
		},
	})
	if err != nil {
		panic(err)
	}
	if err := s.Start(ctx); err != nil { // drift watch and periodic resync
		panic(err)
	}
	defer s.Stop()

	// For each new commit checked out at dir:
	res, err := s.SyncDir(ctx, "3f1c2e9d0a7b", "/var/lib/imagebot/checkouts/fluxdemo")
	if err != nil {
		fmt.Println(res.Status, err) // Kind/ns/name: ... for each failed object
	}
}
