package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/notify"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/update"
)

// Syncer applies the manifests of a checkout to the cluster.
type Syncer interface {
	Sync(ctx context.Context, dir, revision string) error
}

// Scheduler is what the bot needs of the registry scanner.
type Scheduler interface {
	Watch(id string, w scan.Watch)
	Unwatch(id string)
	Latest(repo name.Repository, credID string) (*scan.Result, bool)
}

// Options configures a Bot.
type Options struct {
	Name      string // the repository's name, for logs and watch ids
	Repo      *git.Repo
	Finder    *update.Finder
	Scheduler Scheduler
	Syncer    Syncer // nil: no sync
	// Credentials by registry host ("" for the default keychain).
	Credentials map[string]scan.Credentials
	// PullSecrets, when set, gives a workload's credentials from its imagePullSecrets and
	// its service account's; they win over Credentials.
	PullSecrets scan.KeychainProvider
	// ScanInterval is the registry poll interval of this repository's images (0: the
	// scheduler's default); ImageInterval may override it per image.
	ScanInterval  time.Duration
	ImageInterval func(repo string) time.Duration
	// TagCap is the most tags one of this repository's images may list (0: the scanner's).
	TagCap int
	// Include, when set, says whether an image repository ("host/path") is automated.
	Include func(repo string) bool
	// GitInterval is the longest time between two reconciles (default 1m).
	GitInterval time.Duration
	// Notify receives updates and push and sync failures (nil: none). It must not block.
	Notify func(notify.Event)
	// OnStatus receives every reconcile's status (metrics). It must not block.
	OnStatus func(Status)
	Logger   *slog.Logger
	Now      func() time.Time
}

// Bot automates one repository.
type Bot struct {
	opts Options
	log  *slog.Logger

	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	runOnce sync.Mutex // one reconcile or edit at a time
	stopped bool       // (runOnce) Stop has run: no more reconciles or edits

	mu       sync.Mutex
	watching map[string]name.Repository // watch id → repository
	status   Status

	seen seenTags // build times of the tags run and chosen, for tags later deleted
}

// New returns a Bot; Start runs it.
func New(opts Options) *Bot {
	if opts.GitInterval <= 0 {
		opts.GitInterval = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Finder == nil {
		opts.Finder = &update.Finder{}
	}
	return &Bot{opts: opts, log: opts.Logger.With("repository", opts.Name),
		wake: make(chan struct{}, 1), watching: map[string]name.Repository{}}
}

// Start runs the loop until ctx ends or Stop is called.
func (b *Bot) Start(ctx context.Context) {
	ctx, b.cancel = context.WithCancel(ctx)
	b.done = make(chan struct{})
	go func() {
		defer close(b.done)
		tick := time.NewTicker(b.opts.GitInterval)
		defer tick.Stop()
		for {
			if _, err := b.ReconcileOnce(ctx); err != nil && ctx.Err() == nil {
				b.log.Error("reconcile failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case <-b.wake:
			}
		}
	}()
}

// Stop ends the loop and waits for a reconcile in flight (a push is never cut short by
// Stop itself; its own timeouts bound it), then stops the Syncer's own work (a drift
// watcher) if it has a Stop method.
func (b *Bot) Stop() {
	if b.cancel != nil {
		b.cancel()
		<-b.done
	}
	// An edit or a requested reconcile in flight (the daemon's API) finishes first: another
	// bot on the same data dir may start as soon as this returns.
	b.runOnce.Lock()
	b.stopped = true
	b.runOnce.Unlock()
	if s, ok := b.opts.Syncer.(interface{ Stop() }); ok {
		s.Stop()
	}
}

// Wake asks for a reconcile as soon as possible.
func (b *Bot) Wake() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Watches reports whether the bot watches repo; the daemon wakes it on that repo's scans.
func (b *Bot) Watches(repo name.Repository) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.watching {
		if r.Name() == repo.Name() {
			return true
		}
	}
	return false
}

// ReconcileOnce runs one cycle: fetch, find, watch, select, edit + push, sync.
func (b *Bot) ReconcileOnce(ctx context.Context) (*Status, error) {
	b.runOnce.Lock()
	defer b.runOnce.Unlock()
	if b.stopped {
		return &Status{Repository: b.opts.Name, Error: ErrStopped.Error()}, ErrStopped
	}
	start := b.opts.Now()
	st := Status{Repository: b.opts.Name, Started: start}
	defer func() {
		st.Duration = b.opts.Now().Sub(start)
		b.log.Debug("reconciled", "revision", st.Revision, "pushed", st.Pushed, "synced", st.Synced,
			"targets", len(st.Targets), "duration", st.Duration, "error", st.Error)
		// Metrics first, so that whoever sees this status also sees it counted.
		if b.opts.OnStatus != nil {
			b.opts.OnStatus(st)
		}
		b.mu.Lock()
		b.status = st
		b.mu.Unlock()
	}()

	head, err := b.opts.Repo.Checkout(ctx)
	b.logWarnings()
	if err != nil {
		st.Error = err.Error()
		return &st, err
	}
	st.Revision = head.String()
	found, err := b.opts.Finder.Find(ctx, b.opts.Repo.WorkDir())
	if err != nil {
		st.Error = err.Error()
		return &st, err
	}
	for _, p := range found.Problems {
		b.log.Warn("manifest problem", "problem", p.Error())
		st.Problems = append(st.Problems, p.Error())
	}
	b.watch(ctx, found.Targets)
	decisions, states := b.decide(ctx, found.Targets)
	st.Targets = states

	if len(decisions) > 0 {
		res, err := b.opts.Repo.Update(ctx, func(ctx context.Context, dir string) (*update.ChangeSet, error) {
			// The tree may be newer than the one decided on: decide again on it.
			again, err := b.opts.Finder.Find(ctx, dir)
			if err != nil {
				return nil, err
			}
			ds, _ := b.decide(ctx, again.Targets)
			return b.opts.Finder.Apply(ctx, dir, ds)
		})
		b.logWarnings()
		if err != nil {
			st.Error = err.Error()
			if ctx.Err() != nil {
				return &st, err // stopping: not a push failure to tell anyone about
			}
			b.notify(notify.Event{Kind: notify.PushFailed, Revision: head.String(), Summary: "could not commit and push the image updates", Error: err.Error()})
			return &st, err
		}
		if !res.Commit.IsZero() {
			ev := notify.Event{Kind: notify.Updated, Revision: res.Commit.String(), Summary: strings.SplitN(res.Message, "\n", 2)[0]}
			for _, c := range res.Changes.Changes {
				ev.Details = append(ev.Details, c.String())
			}
			b.notify(ev)
			st.Revision, st.Pushed = res.Head.String(), res.Commit.String()
			for _, c := range res.Changes.Changes {
				for i := range st.Targets {
					ts := &st.Targets[i]
					if ts.File == c.File && ts.Workload == c.Workload.String() && ts.Container == c.Container {
						ts.Image, ts.Pending, ts.Reason = c.New, false, "updated in "+res.Commit.String()
					}
				}
				b.log.Info("updated image", "file", c.File, "workload", c.Workload.String(), "container", c.Container,
					"old", c.Old, "new", c.New, "policy", c.Policy, "commit", res.Commit.String())
			}
		}
	}
	if b.opts.Syncer != nil {
		// The syncer notifies its own failures (it also fails outside the bot's cycles).
		if err := b.opts.Syncer.Sync(ctx, b.opts.Repo.WorkDir(), st.Revision); err != nil {
			st.Error = err.Error()
			return &st, fmt.Errorf("sync %s: %w", st.Revision, err)
		}
		st.Synced = st.Revision
	}
	return &st, nil
}

func (b *Bot) notify(e notify.Event) {
	if b.opts.Notify != nil {
		e.Repository = b.opts.Name
		b.opts.Notify(e)
	}
}

func (b *Bot) logWarnings() {
	for _, w := range b.opts.Repo.Warnings() {
		b.log.Warn(w)
	}
}

// Automatable says whether automation may choose t's tag: automated, not locked or
// ignored, with a valid policy.
func Automatable(t update.Target) bool {
	return t.Automated && !t.Locked && !t.Ignored && t.PolicyErr == nil && t.EditErr == nil && t.Policy != ""
}

// automatable says whether a target is one the bot should choose a tag for, and its image.
func (b *Bot) automatable(t update.Target) (name.Reference, bool) {
	if !Automatable(t) {
		return nil, false
	}
	ref, err := name.ParseReference(t.Image)
	if err != nil {
		return nil, false
	}
	if b.opts.Include != nil && !b.opts.Include(ref.Context().Name()) {
		return nil, false
	}
	return ref, true
}

// credentials are the registry credentials for t's image: its workload's pull secrets
// (through Options.PullSecrets) when it has any, else the registry's from the config, else
// the default keychain.
func (b *Bot) credentials(ctx context.Context, t update.Target, repo name.Repository) scan.Credentials {
	if b.opts.PullSecrets != nil && t.Source != update.SourceMarker {
		ns := t.Workload.Namespace
		if ns == "" {
			ns = "default"
		}
		c, err := b.opts.PullSecrets.Credentials(ctx, scan.Workload{Namespace: ns, ServiceAccount: t.ServiceAccount, PullSecrets: t.PullSecrets})
		if err != nil {
			b.log.Warn("cannot read pull secrets", "workload", t.Workload.String(), "err", err)
		} else if c.ID != "" {
			return c
		}
	}
	if c, ok := b.opts.Credentials[repo.RegistryStr()]; ok {
		return c
	}
	return b.opts.Credentials[""]
}

// watch makes the scheduler watch exactly the images of the automated targets.
func (b *Bot) watch(ctx context.Context, targets []update.Target) {
	want := map[string]scan.Watch{}
	for _, t := range targets {
		ref, ok := b.automatable(t)
		if !ok {
			continue
		}
		need, err := Need(t)
		if err != nil {
			continue
		}
		need.Credentials = b.credentials(ctx, t, ref.Context())
		need.TagCap = b.opts.TagCap
		repo := ref.Context()
		interval := b.opts.ScanInterval
		if b.opts.ImageInterval != nil {
			if d := b.opts.ImageInterval(repo.Name()); d > 0 {
				interval = d
			}
		}
		want[b.opts.Name+"/"+t.ID()] = scan.Watch{Repo: repo, Need: need, Interval: interval}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.watching {
		if _, ok := want[id]; !ok {
			b.opts.Scheduler.Unwatch(id)
			delete(b.watching, id)
		}
	}
	for id, w := range want {
		b.opts.Scheduler.Watch(id, w)
		b.watching[id] = w.Repo
	}
}

func hasDigest(image string) bool { return strings.Contains(image, "@") }

// decide chooses the new reference of every automated target, where one is due.
func (b *Bot) decide(ctx context.Context, targets []update.Target) ([]update.Decision, []TargetStatus) {
	var ds []update.Decision
	var states []TargetStatus
	for _, t := range targets {
		ref, ok := b.automatable(t)
		if !ok {
			continue
		}
		ts := TargetStatus{File: t.File, Workload: t.Workload.String(), Container: t.Container, Image: t.Image, Policy: t.Policy}
		d, err := b.decideOne(ctx, t, ref, &ts)
		if err != nil {
			ts.Reason = err.Error()
		} else if d != nil {
			ds = append(ds, *d)
		}
		states = append(states, ts)
	}
	return ds, states
}

var errWaiting = errors.New("waiting for the first scan of the image")

func (b *Bot) decideOne(ctx context.Context, t update.Target, ref name.Reference, ts *TargetStatus) (*update.Decision, error) {
	repo := ref.Context()
	res, ok := b.opts.Scheduler.Latest(repo, b.credentials(ctx, t, repo).ID)
	if !ok {
		return nil, errWaiting
	}
	c, err := b.chooseFrom(t, res)
	if err != nil {
		return nil, err
	}
	ts.Best, ts.Reason, ts.Tags, ts.Filtered = c.Result.Tag, c.Result.Reason, c.Tags, c.Filtered
	if !c.Result.Changed {
		return nil, nil
	}
	if b.opts.Repo.Reverted(t.File, t.Workload, t.Container, t.Image, c.Next.String()) {
		ts.Reason = fmt.Sprintf("%s was reverted in git after imagebot set it; waiting for a newer tag", c.Result.Tag)
		return nil, nil
	}
	ts.Pending = true
	return &update.Decision{Target: t, Image: c.Next}, nil
}
