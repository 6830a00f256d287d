package bot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/update"
)

// Errors of a release that callers branch on (the daemon's HTTP status, the CLI's exit code).
// A workload that is in no file is update.ErrWorkloadNotFound.
var (
	// ErrNoContainer: no container of the workload runs the image (or has that name).
	ErrNoContainer = errors.New("no matching container")
	// ErrLocked: the workload is locked; a release needs Force.
	ErrLocked = errors.New("workload is locked")
	// ErrNotScanned: the daemon has no scan of the image (it scans the images of automated
	// workloads only), so it cannot say what the policy picks.
	ErrNotScanned = errors.New("image not scanned")
)

// Release sets a workload's images, as fluxctl release did: every container (or only
// Container) running Image's repository to Image, or, when Image is nil, every container
// with a valid policy to what the policy picks now.
type Release struct {
	Workload  update.Workload
	Container string         // "": every container
	Image     name.Reference // nil: what each policy picks
	Force     bool           // release onto a locked workload
}

// Chooser says what t's policy picks now: from a fresh scan (the CLI on a checkout) or from
// the daemon's shared scanner.
type Chooser func(ctx context.Context, t update.Target) (*Choice, error)

// Decide returns the edits of the release over targets (Finder.Find's), which may be none
// when the workload already runs what the release asks. choose is called only when Image is
// nil. Errors: update.ErrWorkloadNotFound, ErrLocked (without Force), ErrNoContainer, and
// choose's.
func (r Release) Decide(ctx context.Context, targets []update.Target, choose Chooser) ([]update.Decision, error) {
	var mine []update.Target
	for _, t := range targets {
		if t.Workload == r.Workload {
			mine = append(mine, t)
		}
	}
	if len(mine) == 0 {
		return nil, fmt.Errorf("release %s: %w", r.Workload, update.ErrWorkloadNotFound)
	}
	if t := mine[0]; t.Locked && !r.Force {
		return nil, fmt.Errorf("release %s: %w%s: unlock it or force the release", r.Workload, ErrLocked, lockReason(t))
	}
	var ds []update.Decision
	matched := false
	for _, t := range mine {
		if r.Container != "" && t.Container != r.Container {
			continue
		}
		cur, err := name.ParseReference(t.Image)
		if err != nil {
			continue
		}
		if r.Image != nil {
			if cur.Context().Name() != r.Image.Context().Name() {
				continue
			}
			matched = true
			if cur.Name() != r.Image.Name() {
				ds = append(ds, update.Decision{Target: t, Image: r.Image})
			}
			continue
		}
		matched = true
		if t.Policy == "" || t.PolicyErr != nil {
			continue
		}
		c, err := choose(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("release %s %s: %w", t.Workload, t.Container, err)
		}
		if c.Result.Changed {
			ds = append(ds, update.Decision{Target: t, Image: c.Next})
		}
	}
	if !matched {
		return nil, fmt.Errorf("release %s: %w: %s", r.Workload, ErrNoContainer, r.missing(mine))
	}
	return ds, nil
}

// lockReason is " (message, by user)" when the lock says why or who.
func lockReason(t update.Target) string {
	var parts []string
	if t.LockedMsg != "" {
		parts = append(parts, t.LockedMsg)
	}
	if t.LockedUser != "" {
		parts = append(parts, "by "+t.LockedUser)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// missing says what no container of the workload matched, and which it has.
func (r Release) missing(mine []update.Target) string {
	var have []string
	for _, t := range mine {
		have = append(have, t.Container+"="+t.Image)
	}
	what := "no container"
	if r.Container != "" {
		what += " " + r.Container
	}
	if r.Image != nil {
		what += " runs " + r.Image.Context().Name()
	}
	return what + " (it has " + strings.Join(have, ", ") + ")"
}

// Preview renders the decisions as the diff Finder.Apply would make in the checkout dir,
// without writing, and returns it with the changes.
func Preview(f *update.Finder, dir string, ds []update.Decision) (string, []update.Change, error) {
	byFile := map[string][]update.Decision{}
	for _, d := range ds {
		byFile[d.Target.File] = append(byFile[d.Target.File], d)
	}
	files := make([]string, 0, len(byFile))
	for file := range byFile {
		files = append(files, file)
	}
	sort.Strings(files)
	var diff strings.Builder
	var changes []update.Change
	for _, file := range files {
		before, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
		if err != nil {
			return "", nil, err
		}
		after, cs, err := f.EditBytes(file, before, byFile[file])
		if err != nil {
			return "", nil, err
		}
		diff.WriteString(update.LineDiff(file, before, after))
		changes = append(changes, cs...)
	}
	return diff.String(), changes, nil
}

// ParseWorkload reads "Kind/namespace/name", "namespace/name" (a Deployment) or "name" (a
// Deployment whose manifest sets no namespace; "Kind//name" for another kind).
func ParseWorkload(s string) (update.Workload, error) {
	var w update.Workload
	switch parts := strings.Split(s, "/"); len(parts) {
	case 1:
		w = update.Workload{Kind: "Deployment", Name: parts[0]}
	case 2:
		w = update.Workload{Kind: "Deployment", Namespace: parts[0], Name: parts[1]}
	case 3:
		w = update.Workload{Kind: parts[0], Namespace: parts[1], Name: parts[2]}
	}
	if w.Kind == "" || w.Name == "" {
		return update.Workload{}, fmt.Errorf("workload %q: want Kind/namespace/name, namespace/name or name", s)
	}
	return w, nil
}
