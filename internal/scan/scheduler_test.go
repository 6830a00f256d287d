package scan_test

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
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

	// bad starts failing: it is retried with backoff, marked failed, keeps its last good
	// result, and good is still scanned on trigger.
	proxy.Add(&testenv.FaultRule{Match: pathHas("/v2/bad/"), Then: &testenv.Fault{Status: http.StatusInternalServerError}})
	sched.Trigger(bad)
	for i := range 3 {
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
