package sync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	stdsync "sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// ErrEmptyRender is returned when a render has no objects: Sync applies and prunes nothing.
var ErrEmptyRender = errors.New("render came out empty: nothing applied, nothing pruned")

// Status is the overall state of a Syncer after a sync.
type Status string

const (
	Ready       Status = "Ready"       // every object applied and Current
	Reconciling Status = "Reconciling" // applied; some objects still rolling out (no wait, or waiting in the background)
	Stalled     Status = "Stalled"     // a render, apply, prune or inventory step failed, or health did not come
)

// Result is the outcome of one Sync (or drift correction).
type Result struct {
	// Revision is the revision this sync attempted; LastAppliedRevision the last one whose
	// every object applied (Revision itself when this sync applied).
	Revision, LastAppliedRevision string
	Status                        Status
	Message                       string
	Changes                       *ChangeSet
	Health                        []Health
	Started                       time.Time
	Duration                      time.Duration
	Err                           error

	gen uint64 // a background health wait's: the sync it follows (0: none)
}

// SyncerOptions configures a Syncer. Name is required; the rest have the defaults in doc.go.
type SyncerOptions struct {
	// Name identifies the repository path: the owner label value and the inventory's name
	// (a DNS-1123 label).
	Name string
	// InventoryNamespace holds the inventory ConfigMap (default "imagebot-system"; it must exist).
	InventoryNamespace string
	// DefaultNamespace is given to namespaced objects without one (default "default").
	DefaultNamespace string
	// Paths are the paths SyncDir renders, relative to the checkout (default: all of it).
	Paths []string
	// Prune deletes what the inventory has and git no longer declares. Off by default, as in
	// Flux v1; without it, objects removed from git are left running and forgotten.
	Prune bool
	// MaxPruneFraction bounds the share of the inventory one sync may delete (default 0.5);
	// AllowMassPrune lifts it for the next syncs.
	MaxPruneFraction float64
	AllowMassPrune   bool
	// PruneKinds lets these ProtectedKinds be pruned.
	PruneKinds []schema.GroupKind
	// HealthTimeout bounds the wait for objects to be Current (default 2m; negative: no wait,
	// the status is a snapshot).
	HealthTimeout time.Duration
	// ResyncInterval is the period of the full reconcile while started (default 5m).
	ResyncInterval time.Duration
	// DriftDebounce and DriftMaxDelay batch drift corrections (defaults 100ms and 1s).
	DriftDebounce, DriftMaxDelay time.Duration
	// Compare chooses how unchanged objects are recognised (default CompareCached).
	Compare CompareMode
	// Recorder receives Kubernetes Events (nil: none). MaxObjectEvents bounds the events
	// about single objects per sync (default 20); a summary event always follows.
	Recorder        EventRecorder
	MaxObjectEvents int
	// WaitInBackground makes Sync return once it has applied and pruned (Status Reconciling
	// while rollouts go on) and wait for health in the background, so the caller can go on:
	// the wait's outcome is a second Result, given to OnResult and Last. A newer sync or Stop
	// ends a background wait without a result.
	WaitInBackground bool
	// OnResult, when set, is called after every sync and drift correction.
	OnResult func(*Result)
}

func (o SyncerOptions) withDefaults() SyncerOptions {
	if o.InventoryNamespace == "" {
		o.InventoryNamespace = "imagebot-system"
	}
	if o.DefaultNamespace == "" {
		o.DefaultNamespace = "default"
	}
	if o.MaxPruneFraction == 0 {
		o.MaxPruneFraction = 0.5
	}
	if o.HealthTimeout == 0 {
		o.HealthTimeout = 2 * time.Minute
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = 5 * time.Minute
	}
	if o.DriftDebounce <= 0 {
		o.DriftDebounce = DefaultDriftDebounce
	}
	if o.DriftMaxDelay <= 0 {
		o.DriftMaxDelay = DefaultDriftMaxDelay
	}
	if o.MaxObjectEvents == 0 {
		o.MaxObjectEvents = 20
	}
	return o
}

// Syncer reconciles the objects of one repository path: Sync applies a revision, Start keeps
// it applied (drift watch and periodic resync) until Stop.
type Syncer struct {
	m     *Manager
	opts  SyncerOptions
	watch *watcher

	mu            stdsync.Mutex // one sync or correction at a time
	massPruneOnce bool          // AllowMassPruneOnce: the next prune may exceed MaxPruneFraction
	desired       []*unstructured.Unstructured
	revision      string
	last          *Result

	runMu  stdsync.Mutex
	cancel context.CancelFunc
	wg     stdsync.WaitGroup

	gen        uint64        // (mu) bumped by every sync: a background wait reports only if still current
	bgMu       stdsync.Mutex // the background health wait (WaitInBackground)
	bgCancel   context.CancelFunc
	bgRevision string // the revision the running wait is for
	bgWG       stdsync.WaitGroup
}

// NewSyncer returns a Syncer using m.
func NewSyncer(m *Manager, opts SyncerOptions) (*Syncer, error) {
	if err := ValidName(opts.Name); err != nil {
		return nil, fmt.Errorf("syncer: %w", err)
	}
	s := &Syncer{m: m, opts: opts.withDefaults()}
	s.watch = newWatcher(m, opts.Name, s.opts.DriftDebounce, s.opts.DriftMaxDelay, s.correct)
	return s, nil
}

// AllowMassPruneOnce lets the next sync delete more than MaxPruneFraction of the inventory:
// the explicit override of the guard, spent by that sync whatever it does (or withdrawn by
// DisallowMassPrune before it runs).
func (s *Syncer) AllowMassPruneOnce() {
	s.mu.Lock()
	s.massPruneOnce = true
	s.mu.Unlock()
}

// DisallowMassPrune withdraws an AllowMassPruneOnce not spent yet.
func (s *Syncer) DisallowMassPrune() {
	s.mu.Lock()
	s.massPruneOnce = false
	s.mu.Unlock()
}

// Last returns the result of the last sync or correction (nil before the first).
func (s *Syncer) Last() *Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// SyncDir renders dir (SyncerOptions.Paths, DefaultNamespace) and syncs the result. A failed
// render applies and prunes nothing; the drift watcher keeps the previous desired set.
func (s *Syncer) SyncDir(ctx context.Context, revision, dir string) (*Result, error) {
	objs, err := s.m.Render(ctx, dir, s.opts.Paths, s.opts.DefaultNamespace)
	if err != nil {
		return s.finish(ctx, &Result{Revision: revision, Changes: &ChangeSet{}, Started: time.Now()}, []error{err}, nil)
	}
	return s.Sync(ctx, revision, objs)
}

// Sync makes the cluster hold objs, the rendering of revision: inventory (old ∪ new) → apply
// → prune (old − new, when enabled and every apply succeeded) → inventory (new and what could
// not be pruned) → health. The objects are not modified. An empty objs is ErrEmptyRender.
// Drift corrections wait while it applies and prunes, not while it waits for health.
func (s *Syncer) Sync(ctx context.Context, revision string, objs []*unstructured.Unstructured) (*Result, error) {
	res, errs, check := s.reconcile(ctx, revision, objs)
	return s.finish(ctx, res, errs, check)
}

// reconcile is Sync up to health: it returns the result so far, the errors, and the objects
// to health-check.
func (s *Syncer) reconcile(ctx context.Context, revision string, objs []*unstructured.Unstructured) (*Result, []error, []*unstructured.Unstructured) {
	s.mu.Lock()
	defer s.mu.Unlock()
	massPrune := s.opts.AllowMassPrune || s.massPruneOnce
	s.massPruneOnce = false // spent by this sync, whatever happens
	res := &Result{Revision: revision, Changes: &ChangeSet{}, Started: time.Now()}
	if len(objs) == 0 {
		return res, []error{ErrEmptyRender}, nil
	}
	desired := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		desired[i] = o.DeepCopy()
	}
	if err := s.m.SetNamespaces(ctx, desired, s.opts.DefaultNamespace); err != nil {
		return res, []error{fmt.Errorf("%w: %w", ErrRender, err)}, nil
	}
	inv, err := s.m.ReadInventory(ctx, s.opts.InventoryNamespace, s.opts.Name)
	if err != nil {
		return res, []error{err}, nil
	}
	res.LastAppliedRevision = inv.LastAppliedRevision
	old, cur := inv.Entries, entriesOf(desired)
	inv.Entries, inv.LastAttemptedRevision = union(old, cur), revision
	if err := s.m.WriteInventory(ctx, inv); err != nil {
		return res, []error{err}, nil
	}
	s.desired, s.revision = desired, revision
	s.watch.setDesired(desired)

	var errs []error
	cs, applyErr := s.m.Apply(ctx, desired, ApplyOptions{Owner: s.opts.Name, Compare: s.opts.Compare, cache: s.cache()})
	res.Changes.Append(cs)
	s.watch.setDesired(desired) // again: kinds of CRDs applied just now can be watched now
	if applyErr != nil {
		errs = append(errs, applyErr)
		if s.opts.Prune && len(minus(old, cur)) > 0 {
			errs = append(errs, errors.New("prune skipped: not every object applied"))
		}
	} else {
		keep := cur
		if s.opts.Prune {
			pcs, err := s.m.Prune(ctx, minus(old, cur), PruneOptions{Owner: s.opts.Name, Inventory: len(old),
				MaxFraction: s.opts.MaxPruneFraction, Override: massPrune, Kinds: s.opts.PruneKinds})
			res.Changes.Append(pcs)
			for _, c := range pcs.Entries {
				if c.Action == Failed {
					keep = append(keep, InventoryEntry{ObjectRef: c.Ref, Version: c.Version})
				}
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		inv.Entries, inv.LastAppliedRevision = union(keep, nil), revision
		res.LastAppliedRevision = revision
		if err := s.m.WriteInventory(ctx, inv); err != nil {
			errs = append(errs, err)
		}
	}
	return res, errs, s.applied(desired, cs)
}

// applied returns the objects of desired that cs did not skip or fail.
func (s *Syncer) applied(desired []*unstructured.Unstructured, cs *ChangeSet) []*unstructured.Unstructured {
	bad := map[ObjectRef]bool{}
	for _, c := range cs.Entries {
		if c.Action == Skipped || c.Action == Failed {
			bad[c.Ref] = true
		}
	}
	var out []*unstructured.Unstructured
	for _, o := range desired {
		if !bad[RefOf(o)] {
			out = append(out, o)
		}
	}
	return out
}

// finish computes health (without holding s.mu) and status, then records events and the
// result.
func (s *Syncer) finish(ctx context.Context, res *Result, errs []error, check []*unstructured.Unstructured) (*Result, error) {
	// A sync that changed nothing in the revision a background wait is watching leaves that
	// wait running: the bot re-syncs every cycle, and restarting the wait each time would
	// never let a stuck rollout reach its timeout (and be reported).
	keep := s.opts.WaitInBackground && len(errs) == 0 && len(res.Changes.Changed()) == 0 && s.waiting(res.Revision)
	var gen uint64
	if !keep {
		gen = s.supersede()
	}
	if len(check) > 0 {
		wo := WaitOptions{Timeout: s.opts.HealthTimeout, Owner: s.opts.Name}
		if len(res.Changes.Changed()) == 0 {
			// The informers may not have seen this sync's own writes yet: a stale copy of a
			// Deployment just updated is Current for kstatus. Use them only when nothing was
			// written.
			wo.cache = s.cache()
		}
		switch wait := len(errs) == 0 && s.opts.HealthTimeout > 0; {
		case wait && !s.opts.WaitInBackground:
			hs, err := s.m.Wait(ctx, check, wo)
			res.Health = hs
			if err != nil {
				errs = append(errs, err)
			}
		default:
			res.Health = s.m.Health(ctx, check, wo)
			if wait && !allCurrent(res.Health) && !keep {
				s.waitInBackground(ctx, gen, res, check, wo)
			}
		}
	}
	return s.record(res, errs)
}

// supersede ends a background health wait (its result would be older than the one being
// made) and returns the new result's generation.
func (s *Syncer) supersede() uint64 {
	s.bgMu.Lock()
	if s.bgCancel != nil {
		s.bgCancel()
		s.bgCancel, s.bgRevision = nil, ""
	}
	s.bgMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	return s.gen
}

// waitInBackground waits for check's health after the result of generation gen, and
// records the outcome as that result's successor unless a newer result came first.
func (s *Syncer) waitInBackground(ctx context.Context, gen uint64, res *Result, check []*unstructured.Unstructured, wo WaitOptions) {
	revision, started := res.Revision, res.Started
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.bgMu.Lock()
	s.mu.Lock()
	current := gen == s.gen
	s.mu.Unlock()
	if !current { // a newer sync came meanwhile: its result speaks
		s.bgMu.Unlock()
		cancel()
		return
	}
	if s.bgCancel != nil {
		s.bgCancel()
	}
	s.bgCancel, s.bgRevision = cancel, revision
	s.bgWG.Add(1)
	s.bgMu.Unlock()
	go func() {
		defer s.bgWG.Done()
		defer cancel()
		hs, err := s.m.Wait(wctx, check, wo)
		s.bgMu.Lock()
		if wctx.Err() == nil { // this wait is over: a sync of the same revision starts a new one
			s.bgCancel, s.bgRevision = nil, ""
		}
		s.bgMu.Unlock()
		if wctx.Err() != nil {
			return // superseded or stopped
		}
		next := &Result{Revision: revision, Changes: &ChangeSet{}, Started: started, Health: hs, gen: gen}
		var errs []error
		if err != nil {
			errs = append(errs, err)
		}
		_, _ = s.record(next, errs)
	}()
}

// waiting says whether a background wait for revision is running.
func (s *Syncer) waiting(revision string) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	return s.bgCancel != nil && s.bgRevision == revision
}

// record sets res's status from errs and its health, makes it Last, records its Events and
// gives it to OnResult.
func (s *Syncer) record(res *Result, errs []error) (*Result, error) {
	res.Err = errors.Join(errs...)
	switch {
	case res.Err != nil:
		res.Status, res.Message = Stalled, firstLines(res.Err.Error(), 5)
	case !allCurrent(res.Health):
		res.Status, res.Message = Reconciling, "applied revision "+res.Revision+"; waiting for rollouts"
	default:
		res.Status, res.Message = Ready, "applied revision "+res.Revision+": "+res.Changes.Summary()
	}
	res.Duration = time.Since(res.Started)
	s.mu.Lock()
	if res.gen != 0 && res.gen != s.gen {
		s.mu.Unlock()
		return res, res.Err // a background wait that a newer result overtook
	}
	if res.LastAppliedRevision == "" && s.last != nil {
		res.LastAppliedRevision = s.last.LastAppliedRevision
	}
	s.events(res, "")
	s.last = res
	s.mu.Unlock()
	if s.opts.OnResult != nil {
		s.opts.OnResult(res)
	}
	return res, res.Err
}

func allCurrent(hs []Health) bool {
	for _, h := range hs {
		if h.Status != status.CurrentStatus {
			return false
		}
	}
	return true
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines[n] = fmt.Sprintf("(and %d more)", strings.Count(s, "\n")-n+1)
	}
	return strings.Join(lines, "\n")
}

// cache returns the watcher's informers when they run.
func (s *Syncer) cache() cacheSource {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.cancel == nil {
		return nil
	}
	return s.watch
}

// Start watches the applied objects and corrects drift, and re-syncs the last revision every
// ResyncInterval, until ctx ends or Stop. Sync may be called before and while it runs.
func (s *Syncer) Start(ctx context.Context) error {
	s.runMu.Lock()
	if s.cancel != nil {
		s.runMu.Unlock()
		return errors.New("syncer " + s.opts.Name + ": already started")
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.watch.start(ctx, &s.wg)
	s.wg.Add(1)
	go s.resyncLoop(ctx)
	s.runMu.Unlock()
	s.watch.waitSynced(ctx, 10*time.Second)
	return nil
}

// resyncLoop re-syncs the last desired set every ResyncInterval: the backstop for missed
// watch events.
func (s *Syncer) resyncLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.ResyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			objs, rev := s.desired, s.revision
			s.mu.Unlock()
			if len(objs) > 0 {
				_, _ = s.Sync(ctx, rev, objs) // the result goes to OnResult and Last
			}
		}
	}
}

// Stop stops what Start started and waits for it.
func (s *Syncer) Stop() {
	// The resync loop first (it may start a background wait), then the background wait.
	s.runMu.Lock()
	cancel := s.cancel
	s.runMu.Unlock()
	if cancel != nil {
		cancel()
		s.wg.Wait()
		s.runMu.Lock()
		s.cancel = nil
		s.runMu.Unlock()
	}
	s.supersede()
	s.bgWG.Wait()
}

// correct re-applies drifted objects (the watcher's onDrift).
func (s *Syncer) correct(ctx context.Context, reasons map[ObjectRef]string) {
	s.mu.Lock()
	var objs []*unstructured.Unstructured
	for _, o := range s.desired {
		if _, ok := reasons[RefOf(o)]; ok {
			objs = append(objs, o)
		}
	}
	if len(objs) == 0 {
		s.mu.Unlock()
		return
	}
	res := &Result{Revision: s.revision, Changes: &ChangeSet{}, Started: time.Now()}
	if s.last != nil {
		res.LastAppliedRevision = s.last.LastAppliedRevision
	}
	cs, err := s.m.Apply(ctx, objs, ApplyOptions{Owner: s.opts.Name, Compare: s.opts.Compare, cache: s.cache()})
	res.Changes.Append(cs)
	for _, c := range cs.Entries {
		if c.Action == Failed {
			s.watch.retryLater(c.Ref, "retry: "+reasons[c.Ref])
		} else {
			s.watch.succeeded(c.Ref)
		}
	}
	if err == nil && len(cs.Changed()) == 0 {
		s.mu.Unlock() // a false alarm (the object was set back already): nothing to report
		return
	}
	res.Err = err
	res.Status, res.Message = Ready, "drift corrected: "+cs.Summary()
	if err != nil {
		res.Status, res.Message = Stalled, "drift correction failed: "+firstLines(err.Error(), 5)
	}
	res.Duration = time.Since(res.Started)
	s.events(res, "drift")
	s.mu.Unlock()
	if s.opts.OnResult != nil {
		s.opts.OnResult(res)
	}
}
