package sync

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// Action is what happened to one object.
type Action string

// Actions reported in a ChangeSet.
const (
	Created    Action = "created"    // it did not exist and was applied
	Configured Action = "configured" // it existed and was changed (drift, a new revision, a takeover)
	Recreated  Action = "recreated"  // an immutable field changed and the object opted in to be replaced
	Unchanged  Action = "unchanged"  // already as declared: not written
	Deleted    Action = "deleted"    // pruned (or already gone)
	Skipped    Action = "skipped"    // left alone on purpose; Reason says why
	Failed     Action = "failed"     // Err says why
)

// Change is the outcome for one object.
type Change struct {
	Ref     ObjectRef
	Version string    // the API version it was applied or deleted at
	UID     types.UID // the live object's, when known
	Action  Action
	// Reason explains a skip, or what differed for a configured object ("spec.replicas").
	Reason string
	Err    error
}

func (c Change) String() string {
	s := c.Ref.String() + " " + string(c.Action)
	if c.Reason != "" {
		s += " (" + c.Reason + ")"
	}
	if c.Err != nil {
		s += ": " + c.Err.Error()
	}
	return s
}

// ChangeSet is the outcome of an apply or a prune, one entry per object.
type ChangeSet struct {
	Entries []Change
}

func (cs *ChangeSet) add(c Change) { cs.Entries = append(cs.Entries, c) }

// Append adds other's entries to cs.
func (cs *ChangeSet) Append(other *ChangeSet) {
	if other != nil {
		cs.Entries = append(cs.Entries, other.Entries...)
	}
}

// Count returns how many entries have action a.
func (cs *ChangeSet) Count(a Action) int {
	n := 0
	for _, c := range cs.Entries {
		if c.Action == a {
			n++
		}
	}
	return n
}

// Find returns the entry for ref.
func (cs *ChangeSet) Find(ref ObjectRef) (Change, bool) {
	for _, c := range cs.Entries {
		if c.Ref == ref {
			return c, true
		}
	}
	return Change{}, false
}

// Changed returns the entries that wrote to the cluster.
func (cs *ChangeSet) Changed() []Change {
	var out []Change
	for _, c := range cs.Entries {
		switch c.Action {
		case Created, Configured, Recreated, Deleted:
			out = append(out, c)
		}
	}
	return out
}

// Err joins the errors of the failed entries (nil when none failed).
func (cs *ChangeSet) Err() error {
	var errs []error
	for _, c := range cs.Entries {
		if c.Err != nil {
			errs = append(errs, c.Err)
		}
	}
	return errors.Join(errs...)
}

// Summary is a one-line count of the actions, e.g. "2 created, 1 configured, 997 unchanged".
func (cs *ChangeSet) Summary() string {
	var parts []string
	for _, a := range []Action{Created, Configured, Recreated, Deleted, Unchanged, Skipped, Failed} {
		if n := cs.Count(a); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	if len(parts) == 0 {
		return "no objects"
	}
	return strings.Join(parts, ", ")
}

func (cs *ChangeSet) sort() {
	slices.SortStableFunc(cs.Entries, func(a, b Change) int {
		return compareKeys(sortKey{stageOf(a.Ref.GroupKind(), false), kindRank(a.Ref.Kind), a.Ref},
			sortKey{stageOf(b.Ref.GroupKind(), false), kindRank(b.Ref.Kind), b.Ref})
	})
}
