package scan

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// Scheduler defaults.
const (
	DefaultInterval  = 5 * time.Minute
	DefaultJitter    = 0.1
	DefaultWorkers   = 4
	DefaultFailAfter = 3
	DefaultRetryBase = 10 * time.Second
	// DefaultRetryMax caps the wait between the scans of a repository that keeps failing.
	// Half an hour: a dead registry, a deleted repository or revoked credentials cost two
	// requests an hour per repository (not one per interval, which on Docker Hub spends an
	// anonymous pull budget of 100 per 6h and fills the log), yet a registry or credential
	// that is fixed is picked up within 30 minutes with nothing done (a webhook, Trigger or a
	// config reload scans at once).
	DefaultRetryMax = 30 * time.Minute
)

// retryJitter spreads the retries of failing repositories: each backoff wait is drawn
// uniformly from [1-retryJitter, 1] × RetryBase·2^(failures-1) (capped), so that
// repositories that failed together (one registry down) do not retry together, and
// RetryMax stays a true maximum.
const retryJitter = 0.25

// Watch is one consumer's interest in a repository: typically one container of one
// workload. Watches of the same repository with the same Credentials.ID are scanned
// together: one listing per cycle, the union of what they need.
type Watch struct {
	Repo name.Repository
	Need Need
	// Interval between scans (0: SchedulerOptions.Interval). A repository is scanned at
	// the shortest interval of its watches, each time give or take the jitter.
	Interval time.Duration
}

// Update reports one scan of a repository to SchedulerOptions.OnUpdate.
type Update struct {
	Repo        name.Repository
	Credentials string // the watches' Credentials.ID
	// Result is the last good result: this scan's when Err is nil, else the one before
	// (nil when there never was one). A failed scan never replaces it; evaluate policies
	// when Err is nil. It is shared: treat it as read-only.
	Result *Result
	Err    error
	// Triggered is true when the scan ran ahead of schedule (Trigger, a webhook).
	Triggered bool
}

// SchedulerOptions configures a Scheduler.
type SchedulerOptions struct {
	Interval time.Duration // default DefaultInterval
	// Jitter spreads scans: each wait is Interval × (1 ± Jitter·random). Default 0.1.
	Jitter float64
	// Workers is how many repositories are scanned at once (default DefaultWorkers).
	Workers int
	// FailAfter is how many failures in a row mark a repository failed (default 3).
	FailAfter int
	// RetryBase and RetryMax shape the backoff of a failing repository: after its n-th
	// failure in a row its next scan waits RetryBase·2^(n-1), capped at RetryMax, drawn
	// uniformly from 75% to 100% of that (the jitter), but never less than the repository's
	// interval (with its usual jitter): a failing repository is never scanned more often
	// than a healthy one. A Retry-After the registry sent wins when longer. A success
	// resets the count; Status.NextScan is the next attempt. RetryMax is independent of the
	// interval and may exceed it (below it, it is the interval).
	RetryBase time.Duration // default DefaultRetryBase (10s)
	RetryMax  time.Duration // default DefaultRetryMax (30m)
	// OnUpdate receives every scan's outcome, from the scanning goroutine: return quickly.
	OnUpdate func(Update)
	Metrics  *Metrics
}

// Status is a repository's state in the scheduler.
type Status struct {
	Repo        name.Repository
	Credentials string
	Watches     int
	LastScan    time.Time
	LastOK      time.Time
	NextScan    time.Time // the next attempt: after a failure, when the backoff ends
	Failures    int       // in a row
	Failed      bool
	LastError   error
	Tags        int // in the last good result
	// Scanning is true while a scan runs; Progress is how far it has got describing tags
	// or, when the last scan failed part-way (a deadline, a pull budget), how far it got:
	// the next scan goes on from there. Zero after a scan that succeeded.
	Scanning bool
	Progress Progress
}

// Scheduler scans watched repositories at their intervals, highest priority first: a
// triggered repository goes to the front of the queue at once.
type Scheduler struct {
	sc   *Scanner
	opts SchedulerOptions

	mu     sync.Mutex
	groups map[string]*group
	byID   map[string]*group
	queue  queue
	wake   chan struct{}
	// failing counts the running scans of groups whose last scan failed: they may hold all
	// workers but one, so that repositories (or a whole registry) that hang until their
	// timeout do not stall the healthy ones (see next).
	failing int

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type group struct {
	heldFailing bool // it runs counted in Scheduler.failing
	key         string
	repo        name.Repository
	cred        Credentials
	watches     map[string]Watch
	need        Need
	interval    time.Duration

	due       time.Time
	prio      int // 1: triggered
	index     int // in the queue; -1 when not queued
	running   bool
	again     bool // triggered while running
	triggered bool // the running scan was triggered
	// expect holds tags a webhook announced; a scan that does not list them yet is repeated
	// (expectTries times at most, after 50ms, 100ms, ...): registries notify before a tag
	// is always listable.
	expect      []string
	expectTries int

	last             *Result
	progress         Progress // of the running scan, or of the last one if it failed
	lastScan, lastOK time.Time
	failures         int
	failed           bool
	lastErr          error
	// retryWait is the wait the last failure asked for (the backoff, or the registry's
	// Retry-After if longer) before the interval floor; zero while healthy.
	retryWait time.Duration
}

// NewScheduler returns a Scheduler over sc; Start runs it.
func NewScheduler(sc *Scanner, opts SchedulerOptions) *Scheduler {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Jitter <= 0 {
		opts.Jitter = DefaultJitter
	}
	opts.Jitter = min(opts.Jitter, 0.9)
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.FailAfter <= 0 {
		opts.FailAfter = DefaultFailAfter
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = DefaultRetryBase
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = DefaultRetryMax
	}
	return &Scheduler{sc: sc, opts: opts, groups: map[string]*group{}, byID: map[string]*group{},
		wake: make(chan struct{}, 1)}
}

func groupKey(repo name.Repository, credID string) string { return repo.Name() + "\x00" + credID }

// Watch adds or replaces the watch called id. A repository new to the scheduler is scanned
// at once.
func (s *Scheduler) Watch(id string, w Watch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := groupKey(w.Repo, w.Need.Credentials.ID)
	if old, ok := s.byID[id]; !ok || old.key != key {
		s.removeLocked(id)
	}
	g, ok := s.groups[key]
	if !ok {
		g = &group{key: key, repo: w.Repo, cred: w.Need.Credentials, watches: map[string]Watch{}, index: -1,
			due: time.Now()}
		s.groups[key] = g
		heap.Push(&s.queue, g)
	}
	g.watches[id] = w
	s.byID[id] = g
	s.merge(g)
	s.opts.Metrics.setWatched(len(s.groups))
	s.poke()
}

// Unwatch removes the watch called id; a repository nobody watches is no longer scanned.
func (s *Scheduler) Unwatch(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(id)
	s.opts.Metrics.setWatched(len(s.groups))
}

func (s *Scheduler) removeLocked(id string) {
	g, ok := s.byID[id]
	if !ok {
		return
	}
	delete(s.byID, id)
	delete(g.watches, id)
	if len(g.watches) > 0 {
		s.merge(g)
		return
	}
	delete(s.groups, g.key)
	if g.index >= 0 {
		heap.Remove(&s.queue, g.index)
	}
}

// merge computes a group's need and interval from its watches.
// anyOf selects what any of fs selects (nil for none).
func anyOf(fs []func(string) bool) func(string) bool {
	if len(fs) == 0 {
		return nil
	}
	return func(t string) bool {
		for _, f := range fs {
			if f(t) {
				return true
			}
		}
		return false
	}
}

func (s *Scheduler) merge(g *group) {
	var matches, timed []func(string) bool
	timedTracks := map[string]bool{} // tags tracked by build-time watches
	need := Need{Credentials: g.cred}
	g.interval = 0
	for _, w := range g.watches {
		if w.Need.Match != nil {
			matches = append(matches, w.Need.Match)
			if w.Need.BuildTime {
				timed = append(timed, w.Need.Match)
			}
		}
		if w.Need.BuildTime {
			for _, t := range w.Need.Track {
				timedTracks[t] = true
			}
		}
		need.BuildTime = need.BuildTime || w.Need.BuildTime
		need.Digest = need.Digest || w.Need.Digest
		need.Track = append(need.Track, w.Need.Track...)
		need.TagCap = max(need.TagCap, w.Need.TagCap)
		iv := w.Interval
		if iv <= 0 {
			iv = s.opts.Interval
		}
		if g.interval == 0 || iv < g.interval {
			g.interval = iv
		}
	}
	slices.Sort(need.Track)
	need.Track = slices.Compact(need.Track)
	need.Match = anyOf(matches)
	if need.BuildTime && len(timed) == 0 && len(timedTracks) == 0 {
		need.BuildTime = false // no build-time watch selects a tag
	} else if need.BuildTime && (len(timed) < len(matches) || len(timedTracks) > 0) {
		// Only the tags a build-time policy could pick (or tracks) need their config: a
		// semver policy's beside a glob's cost a HEAD, not a pull.
		match := anyOf(timed)
		need.BuildTimeOf = func(t string) bool { return timedTracks[t] || (match != nil && match(t)) }
	}
	g.need = need
	if g.index < 0 {
		return
	}
	// A shorter interval applies at once. A failing repository keeps its backoff (the
	// bot re-watches its images every cycle): only its interval floor may come closer.
	limit, due := time.Now().Add(g.interval), time.Now().Add(s.jitter(g.interval))
	if g.failures > 0 {
		limit = g.lastScan.Add(max(time.Duration(float64(g.interval)*(1+s.opts.Jitter)), g.retryWait))
		due = g.lastScan.Add(max(s.jitter(g.interval), g.retryWait))
	}
	if g.due.After(limit) {
		g.due = due
		heap.Fix(&s.queue, g.index)
	}
}

// Trigger moves every watched group of repo (any credentials) to the front of the queue;
// one being scanned is scanned again when it finishes. It reports whether repo is watched.
func (s *Scheduler) Trigger(repo name.Repository) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	prefix := repo.Name() + "\x00"
	for key, g := range s.groups {
		if len(key) < len(prefix) || key[:len(prefix)] != prefix {
			continue
		}
		found = true
		if g.running {
			g.again = true
			continue
		}
		g.prio, g.due = 1, time.Now()
		if g.index >= 0 {
			heap.Fix(&s.queue, g.index)
		}
	}
	if found {
		s.poke()
	}
	return found
}

// TriggerTag is Trigger for a webhook that names the pushed tag: if the scan does not list
// tag yet, it is repeated shortly (a few times at most).
func (s *Scheduler) TriggerTag(repo name.Repository, tag string) bool {
	s.mu.Lock()
	prefix := repo.Name() + "\x00"
	for key, g := range s.groups {
		if len(key) >= len(prefix) && key[:len(prefix)] == prefix && !slices.Contains(g.expect, tag) {
			g.expect, g.expectTries = append(g.expect, tag), 0
		}
	}
	s.mu.Unlock()
	return s.Trigger(repo)
}

// maxExpectTries bounds the rescans waiting for an announced tag.
const maxExpectTries = 6

// Latest returns the last good result of repo scanned with credentials credID.
func (s *Scheduler) Latest(repo name.Repository, credID string) (*Result, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[groupKey(repo, credID)]
	if !ok || g.last == nil {
		return nil, false
	}
	return g.last, true
}

// Status returns every watched repository's state, in no particular order.
func (s *Scheduler) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.groups))
	for _, g := range s.groups {
		st := Status{Repo: g.repo, Credentials: g.cred.ID, Watches: len(g.watches), LastScan: g.lastScan,
			LastOK: g.lastOK, NextScan: g.due, Failures: g.failures, Failed: g.failed, LastError: g.lastErr}
		if g.last != nil {
			st.Tags = len(g.last.Tags)
		}
		st.Scanning, st.Progress = g.running, g.progress
		out = append(out, st)
	}
	return out
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start runs the scheduler until ctx ends or Stop is called.
func (s *Scheduler) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(ctx)
	}()
}

// release ends g's count among the running failing groups; the caller holds s.mu.
func (s *Scheduler) release(g *group) {
	if g.heldFailing {
		g.heldFailing = false
		s.failing--
	}
}

// SetScanner makes the scans that start from now on use sc (new registry settings); the
// watches, their last results and their schedule stay. Scans running finish with the old one.
func (s *Scheduler) SetScanner(sc *Scanner) {
	s.mu.Lock()
	s.sc = sc
	s.mu.Unlock()
}

// Stop stops scheduling and waits for running scans to end (they are cancelled).
func (s *Scheduler) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

func (s *Scheduler) run(ctx context.Context) {
	slots := make(chan struct{}, s.opts.Workers)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select { // a free worker first, so the best group is chosen when one is free
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		g := s.next(ctx, timer)
		if g == nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer func() { <-slots; s.wg.Done() }()
			s.scan(ctx, g)
		}()
	}
}

// next waits for the first due group and marks it running; nil when ctx ends. A group whose
// last scan failed waits while failing groups hold all workers but one.
func (s *Scheduler) next(ctx context.Context, timer *time.Timer) *group {
	maxFailing := max(1, s.opts.Workers-1)
	for {
		s.mu.Lock()
		wait := time.Hour
		eligible := func(g *group) bool { return g.failures == 0 || s.failing < maxFailing }
		var best *group
		if len(s.queue) > 0 && eligible(s.queue[0]) {
			best = s.queue[0] // the usual case: the head of the queue
		} else {
			for _, g := range s.queue {
				if eligible(g) && (best == nil || g.prio > best.prio || (g.prio == best.prio && g.due.Before(best.due))) {
					best = g
				}
			}
		}
		if best != nil {
			if d := time.Until(best.due); best.prio > 0 || d <= 0 {
				heap.Remove(&s.queue, best.index)
				best.running, best.triggered, best.prio = true, best.prio > 0, 0
				if best.failures > 0 {
					best.heldFailing = true
					s.failing++
				}
				s.mu.Unlock()
				return best
			} else {
				wait = d
			}
		}
		s.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-s.wake:
		case <-timer.C:
		case <-ctx.Done():
			return nil
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (s *Scheduler) scan(ctx context.Context, g *group) {
	s.mu.Lock()
	need, sc := g.need, s.sc
	s.mu.Unlock()
	s.mu.Lock()
	g.progress = Progress{} // this scan's, from its first report
	s.mu.Unlock()
	need.Progress = func(p Progress) {
		s.mu.Lock()
		g.progress = p
		s.mu.Unlock()
	}
	res, err := sc.Scan(ctx, g.repo, need)
	if ctx.Err() != nil {
		s.mu.Lock()
		s.release(g)
		s.mu.Unlock()
		return
	}
	now := time.Now()
	s.mu.Lock()
	// Released before the group can be queued (and picked) again, so that its next run is
	// counted afresh.
	s.release(g)
	g.running, g.lastScan = false, now
	if err == nil {
		g.progress = Progress{}
		g.last, g.lastOK, g.failures, g.failed, g.lastErr, g.retryWait = res, now, 0, false, nil, 0
		g.due = now.Add(s.jitter(g.interval))
	} else {
		g.failures++
		g.lastErr = err
		g.failed = g.failures >= s.opts.FailAfter
		g.retryWait = backoff(s.opts.RetryBase, s.opts.RetryMax, g.failures, rand.Float64())
		if ra, ok := RetryAfter(err); ok {
			g.retryWait = max(g.retryWait, ra)
		}
		g.due = now.Add(max(s.jitter(g.interval), g.retryWait))
	}
	if err == nil && len(g.expect) > 0 {
		var missing []string
		for _, t := range g.expect {
			if _, found := slices.BinarySearch(res.Tags, t); !found {
				missing = append(missing, t)
			}
		}
		g.expect = nil
		if len(missing) > 0 && g.expectTries < maxExpectTries {
			g.expect = missing
			g.due = now.Add(50 * time.Millisecond << g.expectTries)
			g.expectTries++
		}
	}
	if g.again {
		g.again, g.prio, g.due = false, 1, now
	}
	if s.groups[g.key] == g {
		heap.Push(&s.queue, g)
	}
	failed := 0
	for _, x := range s.groups {
		if x.failed {
			failed++
		}
	}
	u := Update{Repo: g.repo, Credentials: g.cred.ID, Result: g.last, Err: err, Triggered: g.triggered}
	s.mu.Unlock()
	s.opts.Metrics.setFailing(failed)
	s.poke()
	if s.opts.OnUpdate != nil {
		s.opts.OnUpdate(u)
	}
}

// backoff is the wait after the n-th failure in a row (n ≥ 1): base·2^(n-1), capped at
// maxWait, times 1 - retryJitter·r for r in [0, 1) (uniform from 75% to 100% of it).
func backoff(base, maxWait time.Duration, n int, r float64) time.Duration {
	d := base
	for i := 1; i < n && d < maxWait; i++ {
		if d > maxWait/2 {
			d = maxWait
			break
		}
		d *= 2
	}
	d = min(d, maxWait)
	return time.Duration(float64(d) * (1 - retryJitter*r))
}

func (s *Scheduler) jitter(d time.Duration) time.Duration {
	f := 1 + s.opts.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// queue is a heap of groups: triggered first, then by due time.
type queue []*group

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].prio != q[j].prio {
		return q[i].prio > q[j].prio
	}
	return q[i].due.Before(q[j].due)
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i]; q[i].index = i; q[j].index = j }
func (q *queue) Push(x any) {
	g := x.(*group)
	g.index = len(*q)
	*q = append(*q, g)
}
func (q *queue) Pop() any {
	old := *q
	g := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	g.index = -1
	return g
}
