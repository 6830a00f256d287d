package scan_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

// updates collects a scheduler's updates.
type updates struct {
	mu      sync.Mutex
	c       chan scan.Update
	pending []scan.Update // received while waiting for another repository
}

func newUpdates() *updates { return &updates{c: make(chan scan.Update, 1000)} }

func (u *updates) on(up scan.Update) { u.c <- up }

// wait returns the next update of repo, failing the test after timeout.
func (u *updates) wait(t *testing.T, repo name.Repository, timeout time.Duration) scan.Update {
	t.Helper()
	u.mu.Lock()
	for i, up := range u.pending {
		if up.Repo.Name() == repo.Name() {
			u.pending = append(u.pending[:i], u.pending[i+1:]...)
			u.mu.Unlock()
			return up
		}
	}
	u.mu.Unlock()
	deadline := time.After(timeout)
	for {
		select {
		case up := <-u.c:
			if up.Repo.Name() == repo.Name() {
				return up
			}
			u.mu.Lock()
			u.pending = append(u.pending, up)
			u.mu.Unlock()
		case <-deadline:
			t.Fatalf("no update of %s within %s", repo, timeout)
		}
	}
}

func TestOneListingPerRepositoryPerCredentialSet(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	push(t, host, authn.Anonymous, "shared", "v1", testenv.ImageSpec{Created: base})
	push(t, host, authn.Anonymous, "shared", "v2", testenv.ImageSpec{Created: base.Add(time.Hour)})
	proxy := testenv.StartFaultProxy(host)
	defer proxy.Close()
	repo := repoOf(t, proxy.Host, "shared")
	ups := newUpdates()
	sched := scan.NewScheduler(scan.New(scan.Options{}), scan.SchedulerOptions{Interval: time.Hour, OnUpdate: ups.on})
	// Five workloads with the same (default) credentials and different needs, one with a
	// pull secret of its own.
	for i := range 5 {
		need := scan.Need{}
		if i == 0 {
			need = scan.Need{Match: func(t string) bool { return t == "v1" }, BuildTime: true}
		}
		if i == 1 {
			need = scan.Need{Match: func(t string) bool { return t == "v2" }, Digest: true}
		}
		sched.Watch(fmt.Sprintf("ns/app%d/c", i), scan.Watch{Repo: repo, Need: need})
	}
	creds, err := scan.SecretsCredentials(dockerSecret(`{"auths": {"` + proxy.Host + `": {"username": "u", "password": "p"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	sched.Watch("other/app/c", scan.Watch{Repo: repo, Need: scan.Need{Credentials: creds}})
	sched.Start(ctxT(t))
	defer sched.Stop()
	got := map[string]scan.Update{}
	for range 2 {
		up := ups.wait(t, repo, 10*time.Second)
		got[up.Credentials] = up
	}
	if n := proxy.Count("/tags/list"); n != 2 {
		t.Errorf("%d listings for six watches in two credential sets, want 2", n)
	}
	def := got[""]
	if def.Err != nil || len(def.Result.Images) != 2 || def.Result.Images["v1"].Created.IsZero() || def.Result.Images["v2"].Digest == "" {
		t.Errorf("default credentials: the union of the needs was not met: %+v", def)
	}
	if up, ok := got[creds.ID]; !ok || up.Err != nil {
		t.Errorf("pull-secret credentials: %+v", up)
	}
	if st := sched.Status(); len(st) != 2 || st[0].Watches+st[1].Watches != 6 {
		t.Errorf("status = %+v", st)
	}
}

func TestTriggerAndFailures(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	for _, r := range []string{"good", "bad"} {
		push(t, host, authn.Anonymous, r, "v1", testenv.ImageSpec{Created: base})
	}
	proxy := testenv.StartFaultProxy(host)
	defer proxy.Close()
	good, bad := repoOf(t, proxy.Host, "good"), repoOf(t, proxy.Host, "bad")
	ups := newUpdates()
	sc := scan.New(scan.Options{Retry: scan.Retry{Attempts: 1}})
	sched := scan.NewScheduler(sc, scan.SchedulerOptions{Interval: time.Hour, Workers: 1, FailAfter: 2,
		RetryBase: 50 * time.Millisecond, OnUpdate: ups.on})
	sched.Watch("good", scan.Watch{Repo: good})
	sched.Watch("bad", scan.Watch{Repo: bad})
	sched.Start(ctxT(t))
	defer sched.Stop()
	first := ups.wait(t, bad, 10*time.Second)
	if first.Err != nil || first.Result == nil {
		t.Fatalf("first scan of bad: %+v", first)
	}
	ups.wait(t, good, 10*time.Second)

	// A trigger scans at once, ahead of the hour.
	push(t, host, authn.Anonymous, "good", "v2", testenv.ImageSpec{})
	start := time.Now()
	if !sched.Trigger(good) {
		t.Fatal("Trigger(good) = false")
	}
	up := ups.wait(t, good, 5*time.Second)
	if !up.Triggered || len(up.Result.Tags) != 2 {
		t.Errorf("triggered scan: %+v", up)
	}
	t.Logf("trigger to result: %s", time.Since(start))
	if sched.Trigger(repoOf(t, proxy.Host, "unwatched")) {
		t.Error("Trigger of an unwatched repository = true")
	}

	// bad starts failing: triggered scans (a webhook) still run at once, ahead of its
	// backoff (TestFailingScansBackOff); it is marked failed, keeps its last good result,
	// and good is still scanned on trigger.
	proxy.Add(&testenv.FaultRule{Match: pathHas("/v2/bad/"), Then: &testenv.Fault{Status: http.StatusInternalServerError}})
	for i := range 3 {
		sched.Trigger(bad)
		up := ups.wait(t, bad, 10*time.Second)
		if !errors.Is(up.Err, scan.ErrUnavailable) {
			t.Fatalf("failure %d: %+v", i, up)
		}
		if up.Result != first.Result {
			t.Errorf("a failed scan replaced the last good result")
		}
	}
	var st scan.Status
	for _, s := range sched.Status() {
		if s.Repo.Name() == bad.Name() {
			st = s
		}
	}
	if !st.Failed || st.Failures < 2 || st.LastError == nil || st.Tags != 1 {
		t.Errorf("bad status = %+v, want failed with its last error", st)
	}
	sched.Trigger(good)
	if up := ups.wait(t, good, 5*time.Second); up.Err != nil {
		t.Errorf("good was affected by bad: %v", up.Err)
	}
	sched.Unwatch("bad")
	proxy.Reset()
	time.Sleep(300 * time.Millisecond)
	if n := proxy.Count("/v2/bad/"); n != 0 {
		t.Errorf("an unwatched repository was scanned %d times", n)
	}
}

// TestTriggerTagWaitsForTheTag: a webhook can arrive before its tag is listable (the
// distribution registry notifies before it links the tag). TriggerTag rescans shortly until
// the tag shows, with no further trigger and an hour-long interval.
func TestTriggerTagWaitsForTheTag(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	push(t, host, authn.Anonymous, "app", "v1", testenv.ImageSpec{Created: base})
	app := repoOf(t, host, "app")
	ups := newUpdates()
	sched := scan.NewScheduler(scan.New(scan.Options{}), scan.SchedulerOptions{Interval: time.Hour, OnUpdate: ups.on})
	sched.Watch("app", scan.Watch{Repo: app})
	sched.Start(ctxT(t))
	defer sched.Stop()
	ups.wait(t, app, 10*time.Second)

	if !sched.TriggerTag(app, "v2") { // announced, not pushed yet
		t.Fatal("TriggerTag = false")
	}
	if up := ups.wait(t, app, 5*time.Second); len(up.Result.Tags) != 1 {
		t.Fatalf("first triggered scan: %v", up.Result.Tags)
	}
	push(t, host, authn.Anonymous, "app", "v2", testenv.ImageSpec{Created: base})
	deadline := time.Now().Add(5 * time.Second)
	for {
		up := ups.wait(t, app, 5*time.Second)
		if len(up.Result.Tags) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v2 never listed: %v", up.Result.Tags)
		}
	}
	// Once seen, no more rescans: the next one is an hour away.
	select {
	case up := <-ups.c:
		t.Errorf("an extra scan after the tag showed: %+v", up)
	case <-time.After(500 * time.Millisecond):
	}
}

// scanTimes records when each repository's updates arrived.
type scanTimes struct {
	mu sync.Mutex
	m  map[string][]scan.Update
	at map[string][]time.Time
}

func newScanTimes() *scanTimes {
	return &scanTimes{m: map[string][]scan.Update{}, at: map[string][]time.Time{}}
}

func (s *scanTimes) on(u scan.Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[u.Repo.Name()] = append(s.m[u.Repo.Name()], u)
	s.at[u.Repo.Name()] = append(s.at[u.Repo.Name()], time.Now())
}

func (s *scanTimes) get(repo name.Repository) ([]scan.Update, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]scan.Update(nil), s.m[repo.Name()]...), append([]time.Time(nil), s.at[repo.Name()]...)
}

// waitFor polls until repo has n updates, failing the test after timeout.
func (s *scanTimes) waitFor(t *testing.T, repo name.Repository, n int, timeout time.Duration) []scan.Update {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ups, _ := s.get(repo)
		if len(ups) >= n {
			return ups
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d updates of %s within %s, want %d", len(ups), repo, timeout, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func statusOf(t *testing.T, sched *scan.Scheduler, repo name.Repository, credID string) scan.Status {
	t.Helper()
	for _, st := range sched.Status() {
		if st.Repo.Name() == repo.Name() && st.Credentials == credID {
			return st
		}
	}
	t.Fatalf("%s (credentials %q) is not in the status", repo, credID)
	return scan.Status{}
}

// TestIntervalJitter: after a scan, each repository's next scan is its interval ±10%
// (the default jitter) away: never outside [0.9, 1.1]×interval, and spread, not one value.
func TestIntervalJitter(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	push(t, host, authn.Anonymous, "app", "v1", testenv.ImageSpec{Created: base})
	repo := repoOf(t, host, "app")
	const n = 40
	const interval = time.Hour
	times := newScanTimes()
	sc := scan.New(scan.Options{Limit: scan.Limit{RPS: 1000}}) // 40 sessions at once: not the default 10/s
	sched := scan.NewScheduler(sc, scan.SchedulerOptions{Interval: interval, OnUpdate: times.on})
	for i := range n { // one repository under 40 credential sets: 40 scans on their own schedules
		sched.Watch(fmt.Sprint(i), scan.Watch{Repo: repo, Need: scan.Need{Credentials: scan.Credentials{ID: fmt.Sprint("cred-", i)}}})
	}
	sched.Start(ctxT(t))
	defer sched.Stop()
	for _, up := range times.waitFor(t, repo, n, 10*time.Second) {
		if up.Err != nil {
			t.Fatalf("scan: %v", up.Err)
		}
	}
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for _, st := range sched.Status() {
		if st.LastScan.IsZero() {
			t.Fatalf("%s (%s) not scanned: %+v", st.Repo, st.Credentials, st)
		}
		d := st.NextScan.Sub(st.LastScan)
		if d < interval*9/10 || d > interval*11/10 {
			t.Errorf("%s: next scan %s after the last, want within [%s, %s]", st.Credentials, d, interval*9/10, interval*11/10)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	// 40 draws from ±10%: their range is under a quarter of it with probability ~1e-22.
	if hi-lo < interval/20 {
		t.Errorf("next scans all within %s of each other (%s to %s): no jitter", hi-lo, lo, hi)
	}
}

// TestPerWatchInterval: a watch's own Interval overrides the scheduler's; the shortest
// among the watches of a repository wins (and applies at once), another repository keeps
// its own, and removing the short watch restores the longer interval.
func TestPerWatchInterval(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	for _, r := range []string{"fast", "slow"} {
		push(t, host, authn.Anonymous, r, "v1", testenv.ImageSpec{Created: base})
	}
	fast, slow := repoOf(t, host, "fast"), repoOf(t, host, "slow")
	const short = 200 * time.Millisecond
	times := newScanTimes()
	sched := scan.NewScheduler(scan.New(scan.Options{}), scan.SchedulerOptions{Interval: time.Hour, OnUpdate: times.on})
	sched.Watch("fast-default", scan.Watch{Repo: fast}) // the scheduler's hour
	sched.Watch("slow-30m", scan.Watch{Repo: slow, Interval: 30 * time.Minute})
	sched.Start(ctxT(t))
	defer sched.Stop()
	times.waitFor(t, fast, 1, 10*time.Second)
	times.waitFor(t, slow, 1, 10*time.Second)
	if st := statusOf(t, sched, slow, ""); st.NextScan.Sub(st.LastScan) < 27*time.Minute || st.NextScan.Sub(st.LastScan) > 33*time.Minute {
		t.Errorf("slow: next scan %s after the last, want 30m ±10%%", st.NextScan.Sub(st.LastScan))
	}

	// A second watch of fast asks for 200ms: fast is rescanned every 200ms from now on.
	sched.Watch("fast-200ms", scan.Watch{Repo: fast, Interval: short})
	ups := times.waitFor(t, fast, 5, 3*time.Second)
	for _, up := range ups {
		if up.Err != nil || up.Triggered {
			t.Errorf("fast: %+v", up)
		}
	}
	if st := statusOf(t, sched, fast, ""); st.NextScan.Sub(st.LastScan) < short*9/10 || st.NextScan.Sub(st.LastScan) > short*11/10 {
		t.Errorf("fast: next scan %s after the last, want %s ±10%%", st.NextScan.Sub(st.LastScan), short)
	}
	_, at := times.get(fast)
	for i := 2; i < len(at); i++ { // from the first scan at 200ms on
		if gap := at[i].Sub(at[i-1]); gap < short*8/10 {
			t.Errorf("fast: scans %d and %d %s apart, want about %s", i-1, i, gap, short)
		}
	}
	if ups, _ := times.get(slow); len(ups) != 1 {
		t.Errorf("slow was scanned %d times, want once: fast's interval is fast's only", len(ups))
	}

	// Without the 200ms watch, fast goes back to the hour after its next scan.
	sched.Unwatch("fast-200ms")
	n := len(times.waitFor(t, fast, len(ups)+1, 3*time.Second))
	time.Sleep(3 * short)
	if got, _ := times.get(fast); len(got) > n+1 {
		t.Errorf("fast scanned %d more times after its short watch went, want at most 1", len(got)-n)
	}
	if st := statusOf(t, sched, fast, ""); st.NextScan.Sub(st.LastScan) < 54*time.Minute {
		t.Errorf("fast: next scan %s after the last, want the hour back", st.NextScan.Sub(st.LastScan))
	}
}

// TestFailingRepositoryDoesNotDelayOthers: a repository whose registry hangs fails scan
// after scan (each one taking its request timeouts) and is retried at its interval, yet
// another repository's scans still come at their interval.
func TestFailingRepositoryDoesNotDelayOthers(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	for _, r := range []string{"good", "bad"} {
		push(t, host, authn.Anonymous, r, "v1", testenv.ImageSpec{Created: base})
	}
	proxy := testenv.StartFaultProxy(host)
	defer proxy.Close()
	good, bad := repoOf(t, proxy.Host, "good"), repoOf(t, proxy.Host, "bad")
	const interval = 200 * time.Millisecond
	times := newScanTimes()
	sc := scan.New(scan.Options{RequestTimeout: 300 * time.Millisecond, Retry: scan.Retry{Attempts: 2, Base: 10 * time.Millisecond},
		Limit: scan.Limit{RPS: 1000}})
	sched := scan.NewScheduler(sc, scan.SchedulerOptions{Interval: interval, Workers: 2, RetryBase: 10 * time.Millisecond,
		RetryMax: 10 * time.Millisecond, OnUpdate: times.on})
	sched.Watch("good", scan.Watch{Repo: good})
	sched.Watch("bad", scan.Watch{Repo: bad})
	sched.Start(ctxT(t))
	defer sched.Stop()
	times.waitFor(t, good, 1, 10*time.Second)
	times.waitFor(t, bad, 1, 10*time.Second)
	// From now on every request of bad hangs past its timeout: a scan of bad takes 600ms+
	// and fails, and is retried an interval later (RetryMax 10ms: no backoff beyond the
	// interval), so bad holds a worker most of the time.
	proxy.Add(&testenv.FaultRule{Match: pathHas("/v2/bad/"), Then: &testenv.Fault{Delay: 5 * time.Second}})
	start := time.Now()
	time.Sleep(2500 * time.Millisecond)
	badUps, _ := times.get(bad)
	failures := 0
	for _, up := range badUps[1:] {
		if !errors.Is(up.Err, scan.ErrUnavailable) {
			t.Errorf("bad: %+v, want ErrUnavailable", up)
		}
		failures++
	}
	if failures < 2 {
		t.Errorf("bad failed %d times in 2.5s, want it to keep failing", failures)
	}
	goodUps, at := times.get(good)
	var since []time.Time
	for i, a := range at {
		if goodUps[i].Err != nil {
			t.Errorf("good: %v", goodUps[i].Err)
		}
		if a.After(start) {
			since = append(since, a)
		}
	}
	// 2.5s at 200ms ±10%: about 12 scans; one in every 220ms or so, never one bad scan late.
	if len(since) < 8 {
		t.Errorf("good was scanned %d times in 2.5s beside a failing repository, want about 12", len(since))
	}
	for i := 1; i < len(since); i++ {
		if gap := since[i].Sub(since[i-1]); gap > 2*interval {
			t.Errorf("good's scans %d and %d came %s apart, want about %s", i-1, i, gap, interval)
		}
	}
}

// TestHangingRegistryLeavesAWorker: repositories of a registry that hangs hold at most all
// workers but one, so another registry's repository keeps being scanned on time.
func TestHangingRegistryLeavesAWorker(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	for _, r := range []string{"good", "bad1", "bad2"} {
		push(t, host, authn.Anonymous, r, "v1", testenv.ImageSpec{Created: base})
	}
	proxy := testenv.StartFaultProxy(host) // the "hanging registry": another host
	defer proxy.Close()
	good := repoOf(t, host, "good")
	bad1, bad2 := repoOf(t, proxy.Host, "bad1"), repoOf(t, proxy.Host, "bad2")
	const interval = 200 * time.Millisecond
	times := newScanTimes()
	sc := scan.New(scan.Options{RequestTimeout: 300 * time.Millisecond, Retry: scan.Retry{Attempts: 2, Base: 10 * time.Millisecond},
		Limit: scan.Limit{RPS: 1000}})
	sched := scan.NewScheduler(sc, scan.SchedulerOptions{Interval: interval, Workers: 2, RetryBase: 10 * time.Millisecond,
		RetryMax: 10 * time.Millisecond, OnUpdate: times.on})
	proxy.Add(&testenv.FaultRule{Match: pathHas("/v2/bad"), Then: &testenv.Fault{Delay: 5 * time.Second}})
	sched.Watch("bad1", scan.Watch{Repo: bad1})
	sched.Watch("bad2", scan.Watch{Repo: bad2})
	sched.Watch("good", scan.Watch{Repo: good})
	sched.Start(ctxT(t))
	defer sched.Stop()
	times.waitFor(t, good, 1, 10*time.Second)
	start := time.Now()
	time.Sleep(2 * time.Second)
	_, at := times.get(good)
	n := 0
	for _, a := range at {
		if a.After(start) {
			n++
		}
	}
	// 2s at 200ms: about 9 scans of good; with both workers held by the hanging
	// repositories, one every 600ms or so.
	if n < 6 {
		t.Errorf("good was scanned %d times in 2s beside a hanging registry, want about 9", n)
	}
}

// TestSetScanner: a scanner given to a running scheduler (new registry settings) does the
// scans that start afterwards; the watch and its schedule stay. (The first scanner's dial
// error reaches the ping over HTTPS and HTTP both: go-containerregistry joins them into an
// error type that == cannot compare, which used to panic the scanner.)
func TestSetScanner(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	push(t, host, authn.Anonymous, "app", "v1", testenv.ImageSpec{Created: base})
	app := repoOf(t, host, "app")
	refusing := http.DefaultTransport.(*http.Transport).Clone()
	refusing.DialContext = func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("the old settings cannot reach it")
	}
	times := newScanTimes()
	sched := scan.NewScheduler(scan.New(scan.Options{Transport: refusing, Retry: scan.Retry{Attempts: 1}}),
		scan.SchedulerOptions{Interval: time.Hour, RetryBase: time.Hour, OnUpdate: times.on})
	sched.Watch("app", scan.Watch{Repo: app})
	sched.Start(ctxT(t))
	defer sched.Stop()
	if ups := times.waitFor(t, app, 1, 10*time.Second); ups[0].Err == nil {
		t.Fatal("the first scanner reached the registry")
	}
	sched.SetScanner(scan.New(scan.Options{}))
	sched.Trigger(app)
	if ups := times.waitFor(t, app, 2, 10*time.Second); ups[1].Err != nil || len(ups[1].Result.Tags) != 1 {
		t.Fatalf("after SetScanner: %+v", ups[1])
	}
}

// TestFailingScansBackOff: a repository whose registry answers 500 backs off. With a 10ms
// interval, RetryBase 20ms and RetryMax 160ms, the wait the status gives after each
// failure (NextScan - LastScan, read as the failure is reported, before the next scan can
// start) is 75-100% of 20, 40, 80ms, then of 160ms every time: each about double the one
// before until the cap, and never growing past it. Each failed scan comes no sooner than
// the wait before it, and the four scans after the cap take well under the 3.6s they would
// take uncapped. A 429 asking for 2s (longer than the cap) waits 2s. A success resets the
// wait to the interval (10ms ±10%).
func TestFailingScansBackOff(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	push(t, host, authn.Anonymous, "app", "v1", testenv.ImageSpec{Created: base})
	proxy := testenv.StartFaultProxy(host)
	defer proxy.Close()
	app := repoOf(t, proxy.Host, "app")
	const (
		interval   = 10 * time.Millisecond
		retryBase  = 20 * time.Millisecond
		retryMax   = 160 * time.Millisecond
		failures   = 8
		retryAfter = 2 * time.Second
	)
	var mode atomic.Int32 // 0: 500, 1: 429 with Retry-After, 2: the registry answers
	match := func(m int32) func(*http.Request) bool {
		return func(r *http.Request) bool { return mode.Load() == m && pathHas("/v2/app/")(r) }
	}
	proxy.Add(&testenv.FaultRule{Match: match(0), Then: &testenv.Fault{Status: http.StatusInternalServerError}})
	proxy.Add(&testenv.FaultRule{Match: match(1), Then: &testenv.Fault{Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {fmt.Sprint(int(retryAfter.Seconds()))}}}})

	type seen struct {
		up scan.Update
		st scan.Status
	}
	var mu sync.Mutex
	var log []seen
	var sched *scan.Scheduler
	sched = scan.NewScheduler(scan.New(scan.Options{Retry: scan.Retry{Attempts: 1}, Limit: scan.Limit{RPS: 1000}}),
		scan.SchedulerOptions{Interval: interval, Workers: 1, RetryBase: retryBase, RetryMax: retryMax,
			OnUpdate: func(u scan.Update) {
				// One worker: the next scan cannot start before this returns, so the status
				// is this scan's.
				st := sched.Status()
				mu.Lock()
				defer mu.Unlock()
				if len(log) < 500 && len(st) == 1 {
					log = append(log, seen{u, st[0]})
				}
			}})
	sched.Watch("app", scan.Watch{Repo: app})
	sched.Start(ctxT(t))
	defer sched.Stop()
	// next waits for the first update from index from on that ok accepts.
	next := func(from int, ok func(seen) bool) (int, seen) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			for i := from; i < len(log); i++ {
				if ok(log[i]) {
					s := log[i]
					mu.Unlock()
					return i, s
				}
			}
			mu.Unlock()
		}
		t.Fatalf("no such update of %s within 20s", app)
		return 0, seen{}
	}
	wait := func(s seen) time.Duration { return s.st.NextScan.Sub(s.st.LastScan) }

	// Failures 1 to 8: the backoff.
	last, _ := next(failures-1, func(seen) bool { return true })
	mu.Lock()
	fails := append([]seen(nil), log[:last+1]...)
	mu.Unlock()
	for i, s := range fails {
		n := i + 1
		if !errors.Is(s.up.Err, scan.ErrUnavailable) || s.st.Failures != n {
			t.Fatalf("scan %d: err %v, %d failures in a row; want ErrUnavailable, %d", n, s.up.Err, s.st.Failures, n)
		}
		nominal := min(retryMax, retryBase<<(n-1))
		if w := wait(s); w < nominal*3/4 || w > nominal {
			t.Errorf("after failure %d the next scan is %s away, want 75-100%% of %s", n, w, nominal)
		}
		if i == 0 {
			continue
		}
		if r := float64(wait(s)) / float64(wait(fails[i-1])); n <= 4 && (r < 1.5 || r > 2/0.75) {
			t.Errorf("wait after failure %d is %.2f× the one before, want about 2 (1.5-2.67)", n, r)
		}
		if gap := s.st.LastScan.Sub(fails[i-1].st.LastScan); gap < wait(fails[i-1]) {
			t.Errorf("failed scans %d and %d came %s apart, sooner than the %s wait", n-1, n, gap, wait(fails[i-1]))
		}
	}
	// Capped from failure 4 on: the four scans after it took 4×(120-160ms) plus the scans,
	// not the 0.75×(320+640+1280+2560)ms = 3.6s at least of an uncapped backoff.
	if d := fails[7].st.LastScan.Sub(fails[3].st.LastScan); d > 3*time.Second {
		t.Errorf("failures 4 to 8 took %s: the backoff did not stop growing at %s", d, retryMax)
	}

	// A Retry-After longer than the backoff wins.
	mode.Store(1)
	i, limited := next(last+1, func(s seen) bool { return errors.Is(s.up.Err, scan.ErrRateLimited) })
	if ra, ok := scan.RetryAfter(limited.up.Err); !ok || ra != retryAfter {
		t.Errorf("429 error %v: Retry-After %s, %v; want %s", limited.up.Err, ra, ok, retryAfter)
	}
	if w := wait(limited); w != retryAfter {
		t.Errorf("after a 429 asking for %s the next scan is %s away", retryAfter, w)
	}

	// A success resets the backoff: the next scan is an interval away.
	mode.Store(2)
	_, ok := next(i+1, func(s seen) bool { return s.up.Err == nil })
	if ok.st.Failures != 0 || ok.st.Failed {
		t.Errorf("after a success: %d failures, failed %v", ok.st.Failures, ok.st.Failed)
	}
	if w := wait(ok); w < interval*9/10 || w > interval*11/10 {
		t.Errorf("after a success the next scan is %s away, want the interval %s ±10%%", w, interval)
	}
	if gap := ok.st.LastScan.Sub(limited.st.LastScan); gap < retryAfter {
		t.Errorf("the scan after the 429 came %s later, sooner than its Retry-After %s", gap, retryAfter)
	}
}
