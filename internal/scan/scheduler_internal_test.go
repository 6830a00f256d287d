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

// TestBackoff: the wait after the n-th failure in a row is 75-100% of base·2^(n-1), capped
// at the maximum, with no overflow however many failures.
func TestBackoff(t *testing.T) {
	const base, maxWait = 10 * time.Second, 30 * time.Minute
	for _, tc := range []struct {
		n       int
		nominal time.Duration
	}{
		{1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {6, 320 * time.Second},
		{8, 1280 * time.Second}, {9, maxWait}, {10, maxWait}, {64, maxWait}, {1 << 30, maxWait},
	} {
		if got := backoff(base, maxWait, tc.n, 0); got != tc.nominal {
			t.Errorf("backoff(n=%d, r=0) = %s, want %s", tc.n, got, tc.nominal)
		}
		if got, want := backoff(base, maxWait, tc.n, 1), tc.nominal*3/4; got != want {
			t.Errorf("backoff(n=%d, r=1) = %s, want %s (75%%)", tc.n, got, want)
		}
		if got := backoff(base, maxWait, tc.n, 0.5); got != tc.nominal*7/8 {
			t.Errorf("backoff(n=%d, r=0.5) = %s, want %s", tc.n, got, tc.nominal*7/8)
		}
	}
	if got := backoff(time.Hour, maxWait, 1, 0); got != maxWait {
		t.Errorf("a base above the maximum: %s, want the maximum %s", got, maxWait)
	}
	if got := backoff(time.Nanosecond, time.Duration(1<<62), 200, 0); got != time.Duration(1<<62) {
		t.Errorf("a huge maximum: %s", got)
	}
}

// TestRewatchKeepsBackoff: the bot re-watches its images every cycle; a failing
// repository's backoff survives that (it used to be pulled back to the interval), while a
// shorter interval still brings its floor closer, and a healthy repository's next scan
// still moves to a shorter interval at once.
func TestRewatchKeepsBackoff(t *testing.T) {
	repo, err := name.NewRepository("127.0.0.1:1/app", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	s := NewScheduler(New(Options{}), SchedulerOptions{Interval: time.Minute})
	s.Watch("a", Watch{Repo: repo})
	g := s.byID["a"]
	now := time.Now()
	// Failed 8 times; the backoff says 20m, beyond the 1m interval.
	g.failures, g.lastScan, g.retryWait, g.due = 8, now, 20*time.Minute, now.Add(20*time.Minute)
	s.Watch("a", Watch{Repo: repo})
	s.Watch("b", Watch{Repo: repo, Interval: 30 * time.Second})
	if g.due != now.Add(20*time.Minute) {
		t.Errorf("re-watched, the failing repository's next scan moved from 20m to %s", g.due.Sub(now))
	}
	// A next scan an hour away (as a 1h interval would set it) with a 10s backoff: a 1m
	// interval brings it to ~1m.
	s.Unwatch("b")
	g.retryWait, g.due = 10*time.Second, now.Add(time.Hour)
	s.Watch("a", Watch{Repo: repo, Interval: time.Minute})
	if d := g.due.Sub(now); d < 54*time.Second || d > 66*time.Second {
		t.Errorf("a failing repository with a 1m interval and a 10s backoff: next scan in %s, want 1m ±10%%", d)
	}
	// Healthy: a shorter interval applies at once.
	g.failures, g.retryWait, g.due = 0, 0, now.Add(time.Hour)
	s.Watch("a", Watch{Repo: repo, Interval: time.Second})
	if d := time.Until(g.due); d > 1100*time.Millisecond {
		t.Errorf("healthy, interval now 1s: next scan in %s", d)
	}
}
