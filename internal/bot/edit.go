package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/notify"
	"imagebot.dev/imagebot/internal/update"
)

// ErrPush: an edit was made but could not be committed and pushed (or the branch could
// not be fetched); the git error follows.
var ErrPush = errors.New("commit and push")

// ErrStopped: the bot was stopped (its repository's config changed or went away); the
// daemon's new bot for it takes requests.
var ErrStopped = errors.New("the repository's bot was stopped (its config changed); try again")

// Edit runs fn on the repository through git's Update (fetch, edit on the remote head,
// commit with message's message, push, edit again on a newer head after a lost race),
// one at a time with the reconcile loop, and wakes the loop so that a pushed commit is
// applied. An error of fn is returned as is; any other failure wraps ErrPush.
func (b *Bot) Edit(ctx context.Context, fn git.EditFunc, message func(*update.ChangeSet) string) (*git.Result, error) {
	var editErr error
	wrapped := func(ctx context.Context, dir string) (*update.ChangeSet, error) {
		cs, err := fn(ctx, dir)
		editErr = err
		return cs, err
	}
	b.runOnce.Lock()
	if b.stopped {
		b.runOnce.Unlock()
		return nil, ErrStopped
	}
	res, err := b.opts.Repo.Update(ctx, wrapped, git.WithMessage(message))
	b.runOnce.Unlock()
	b.logWarnings()
	switch {
	case err != nil && editErr != nil && errors.Is(err, editErr):
		return res, err
	case err != nil:
		return res, fmt.Errorf("%w: %w", ErrPush, err)
	}
	if !res.Commit.IsZero() {
		subject, _, _ := strings.Cut(res.Message, "\n")
		ev := notify.Event{Kind: notify.Updated, Revision: res.Commit.String(), Summary: subject}
		for _, c := range res.Changes.Changes {
			ev.Details = append(ev.Details, c.String())
		}
		b.notify(ev)
		b.log.Info("committed an edit", "commit", res.Commit.String(), "message", subject, "changes", len(res.Changes.Changes))
		b.Wake()
	}
	return res, nil
}

// Release makes the release r in the repository, deciding on the head it commits on (a
// release of every image asks the shared scanner's latest results, as the loop does), with
// a commit message naming who asked (user, may be ""). With dryRun it commits nothing and
// returns the diff it would commit, and the changes in the result.
func (b *Bot) Release(ctx context.Context, r Release, user string, dryRun bool) (*git.Result, string, error) {
	var diff string
	var preview []update.Change
	res, err := b.Edit(ctx, func(ctx context.Context, dir string) (*update.ChangeSet, error) {
		found, err := b.opts.Finder.Find(ctx, dir)
		if err != nil {
			return nil, err
		}
		ds, err := r.Decide(ctx, found.Targets, b.choose)
		if err != nil || len(ds) == 0 {
			return &update.ChangeSet{}, err
		}
		if dryRun { // nothing written: nothing committed
			diff, preview, err = Preview(b.opts.Finder, dir, ds)
			return &update.ChangeSet{}, err
		}
		return b.opts.Finder.Apply(ctx, dir, ds)
	}, func(cs *update.ChangeSet) string { return releaseMessage(cs, user) })
	if res != nil && dryRun {
		res.Changes = &update.ChangeSet{Changes: preview}
	}
	return res, diff, err
}

// Annotate makes the annotation edit e (automate, lock, policy …) in the repository, with
// a commit message naming who asked (user, may be "").
func (b *Bot) Annotate(ctx context.Context, e update.AnnotationEdit, user string) (*git.Result, error) {
	return b.Edit(ctx, func(ctx context.Context, dir string) (*update.ChangeSet, error) {
		return b.opts.Finder.Annotate(ctx, dir, e)
	}, func(cs *update.ChangeSet) string { return annotationMessage(e, cs, user) })
}

// choose is the Chooser of the daemon: what t's policy makes of the shared scanner's last
// result for its image.
func (b *Bot) choose(ctx context.Context, t update.Target) (*Choice, error) {
	ref, err := name.ParseReference(t.Image)
	if err != nil {
		return nil, err
	}
	repo := ref.Context()
	res, ok := b.opts.Scheduler.Latest(repo, b.credentials(ctx, t, repo).ID)
	if !ok {
		return nil, fmt.Errorf("%w: %s (the daemon scans the images of automated workloads only; release a given image instead)", ErrNotScanned, repo)
	}
	return b.chooseFrom(t, res)
}

// releaseMessage: "Release my-demo/fluxdemo flask to develop-v1.8.1 (by alice)" (or
// "Release N images in my-demo/fluxdemo"), then one line per change.
func releaseMessage(cs *update.ChangeSet, user string) string {
	var subject string
	workloads := map[string]bool{}
	for _, c := range cs.Changes {
		workloads[shortName(c)] = true
	}
	switch c := cs.Changes[0]; {
	case len(cs.Changes) == 1:
		subject = fmt.Sprintf("Release %s %s to %s", shortName(c), c.Container, tagOrRef(c.New))
	case len(workloads) == 1:
		subject = fmt.Sprintf("Release %d images in %s", len(cs.Changes), shortName(c))
	default:
		subject = fmt.Sprintf("Release %d images in %d workloads", len(cs.Changes), len(workloads))
	}
	return withBody(subject+by(user), cs)
}

// annotationMessage is the commit message of an annotation edit: "Lock
// Deployment/my-demo/fluxdemo: reason (by alice)", "Automate …", "Set policy of … flask to
// semver:~1.2", then one line per change.
func annotationMessage(e update.AnnotationEdit, cs *update.ChangeSet, user string) string {
	w := e.Workload.String()
	var parts []string
	if e.Automated != nil {
		parts = append(parts, map[bool]string{true: "Automate ", false: "Deautomate "}[*e.Automated]+w)
	}
	if e.Locked != nil {
		if *e.Locked {
			p := "Lock " + w
			if e.LockedMsg != "" {
				p += ": " + oneLine(e.LockedMsg)
			}
			parts = append(parts, p)
		} else {
			parts = append(parts, "Unlock "+w)
		}
	}
	switch len(e.Tags) {
	case 0:
	case 1:
		for c, p := range e.Tags {
			if p == "" {
				parts = append(parts, fmt.Sprintf("Remove the policy of %s %s", w, c))
			} else {
				parts = append(parts, fmt.Sprintf("Set the policy of %s %s to %s", w, c, p))
			}
		}
	default:
		parts = append(parts, "Set policies of "+w)
	}
	return withBody(strings.Join(parts, "; ")+by(user), cs)
}

func by(user string) string {
	if user == "" {
		return ""
	}
	return " (by " + oneLine(user) + ")"
}

// oneLine keeps text given by a person on the subject line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func withBody(subject string, cs *update.ChangeSet) string {
	var b strings.Builder
	b.WriteString(subject + "\n\n")
	for _, c := range cs.Changes {
		b.WriteString("- " + c.String() + "\n")
	}
	return b.String()
}

// shortName is "namespace/name" (or the name, or the file for a marker), as the default
// commit message names workloads.
func shortName(c update.Change) string {
	switch {
	case c.Workload.Name == "":
		return c.File
	case c.Workload.Namespace == "":
		return c.Workload.Name
	}
	return c.Workload.Namespace + "/" + c.Workload.Name
}

// tagOrRef is the tag of ref (with its digest when pinned), or ref itself.
func tagOrRef(ref string) string {
	t := update.TagOf(ref)
	if t == "" {
		return ref
	}
	if _, digest, ok := strings.Cut(ref, "@"); ok {
		return t + "@" + digest
	}
	return t
}
