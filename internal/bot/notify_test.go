package bot_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/notify"
)

// TestPushFailedIsNotified: a push the server refuses (a pre-receive hook) fails the cycle
// and is told to the notification sinks with the server's reason; nothing is committed.
func TestPushFailedIsNotified(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	w := newWorld(t, ctx, func(w *world) {
		w.push("v1", t0)
		w.push("v2", t0.Add(time.Hour))
	})
	w.start("v1", "glob:v*")
	if err := w.env.Git.InstallHook("config", "pre-receive", "#!/bin/sh\necho 'pushes are frozen today' >&2\nexit 1\n"); err != nil {
		t.Fatal(err)
	}
	commits := w.commits()
	var mu sync.Mutex
	var events []notify.Event
	b := bot.New(bot.Options{Name: "demo", Repo: w.repo, Scheduler: w.sched, Notify: func(e notify.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}})
	st, err := b.ReconcileOnce(ctx)
	if err == nil || st.Pushed != "" {
		t.Fatalf("a refused push: pushed %q, err %v", st.Pushed, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].Kind != notify.PushFailed || events[0].Repository != "demo" ||
		!strings.Contains(events[0].Error, "pushes are frozen today") {
		t.Fatalf("notifications: %+v", events)
	}
	if n := w.commits(); n != commits {
		t.Errorf("%d commits on the server, want %d", n, commits)
	}
}
