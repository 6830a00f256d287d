package scan

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// TestFailingCountSettles: a failing group triggered again as its scan finishes (a webhook
// arriving then) is counted once per run, so the count of running failing groups is back
// to zero when nothing runs (it leaked, and once at Workers-1 no failing group was scanned).
func TestFailingCountSettles(t *testing.T) {
	bad, err := name.NewRepository("127.0.0.1:1/bad", name.Insecure) // refused at once
	if err != nil {
		t.Fatal(err)
	}
	var sched *Scheduler
	var n atomic.Int32
	sched = NewScheduler(New(Options{Retry: Retry{Attempts: 1}}),
		SchedulerOptions{Interval: time.Hour, RetryBase: time.Hour, Workers: 4, OnUpdate: func(Update) {
			if n.Add(1) <= 20 {
				sched.Trigger(bad) // the webhook, as the scan ends
				time.Sleep(50 * time.Millisecond)
			}
		}})
	sched.Watch("bad", Watch{Repo: bad})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sched.Start(ctx)
	defer sched.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for n.Load() < 21 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n.Load() < 21 {
		t.Fatalf("%d scans in 20s", n.Load())
	}
	time.Sleep(200 * time.Millisecond) // the last scan's bookkeeping
	sched.mu.Lock()
	failing, running := sched.failing, 0
	for _, g := range sched.groups {
		if g.running {
			running++
		}
	}
	sched.mu.Unlock()
	if running == 0 && failing != 0 {
		t.Errorf("no scan running, %d counted as running failing groups", failing)
	}
}
