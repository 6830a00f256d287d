package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ErrPruneLimit is returned when a prune would delete more than the allowed share of an
// inventory at once.
var ErrPruneLimit = errors.New("prune limit")

// ProtectedKinds are never pruned unless PruneOptions.Kinds allows them: deleting them loses
// data (PVCs), or everything inside (Namespaces, CRDs and their custom resources).
var ProtectedKinds = []schema.GroupKind{
	{Kind: "Namespace"}, {Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"},
	{Kind: "PersistentVolumeClaim"},
}

// PruneOptions tunes one Prune.
type PruneOptions struct {
	// Owner is the Syncer name: an object is deleted only while its owner label says so.
	Owner string
	// Inventory is the size of the inventory the candidates come from; with MaxFraction it
	// bounds how many may go at once. MaxFraction 0 means no bound.
	Inventory   int
	MaxFraction float64
	// Override deletes past MaxFraction.
	Override bool
	// Kinds lists ProtectedKinds that may be pruned all the same.
	Kinds []schema.GroupKind
}

// Prune deletes the candidates (inventory entries that git no longer declares) in reverse
// apply order, with background propagation, after re-reading each (metadata only): objects
// whose owner label does not name opts.Owner, annotated imagebot.dev/prune: disabled or with
// an ignore annotation ("true" or "sync_only"), or of a protected kind are skipped. NotFound
// counts as deleted. It returns one entry per candidate; the candidates to keep in the
// inventory are the Failed ones.
func (m *Manager) Prune(ctx context.Context, candidates []InventoryEntry, opts PruneOptions) (*ChangeSet, error) {
	cs := &ChangeSet{}
	if len(candidates) == 0 {
		return cs, nil
	}
	if opts.MaxFraction > 0 && !opts.Override && opts.Inventory > 0 &&
		float64(len(candidates)) > opts.MaxFraction*float64(opts.Inventory) {
		err := fmt.Errorf("%w: %d of %d inventory objects would be deleted, more than %.0f%%; nothing was pruned (set the override to prune them)",
			ErrPruneLimit, len(candidates), opts.Inventory, 100*opts.MaxFraction)
		for _, c := range candidates {
			cs.add(Change{Ref: c.ObjectRef, Version: c.Version, Action: Failed, Err: objErr(c.ObjectRef, "prune", ErrPruneLimit)})
		}
		return cs, err
	}
	order := slices.Clone(candidates)
	sortEntries(order)
	slices.Reverse(order)
	// Delete one stage and rank at a time, the members of each concurrently.
	for start := 0; start < len(order); {
		end := start + 1
		k := rankOf(order[start])
		for end < len(order) && rankOf(order[end]) == k {
			end++
		}
		batch := order[start:end]
		changes := make([]Change, len(batch))
		m.forEach(ctx, len(batch), func(i int) { changes[i] = m.pruneOne(ctx, batch[i], opts) })
		for i, c := range changes {
			if c.Action == "" {
				c = Change{Ref: batch[i].ObjectRef, Version: batch[i].Version, Action: Failed, Err: objErr(batch[i].ObjectRef, "prune", context.Cause(ctx))}
			}
			cs.add(c)
		}
		start = end
	}
	return cs, cs.Err()
}

func rankOf(e InventoryEntry) [2]int {
	return [2]int{stageOf(e.GroupKind(), false), kindRank(e.Kind)}
}

func (m *Manager) pruneOne(ctx context.Context, e InventoryEntry, opts PruneOptions) Change {
	ch := Change{Ref: e.ObjectRef, Version: e.Version}
	skip := func(reason string) Change {
		ch.Action, ch.Reason = Skipped, reason
		return ch
	}
	if slices.Contains(ProtectedKinds, e.GroupKind()) && !slices.Contains(opts.Kinds, e.GroupKind()) {
		return skip("protected kind: not pruned unless allowed")
	}
	mp, err := m.mapping(schema.GroupVersionKind{Group: e.Group, Version: e.Version, Kind: e.Kind})
	if meta.IsNoMatchError(err) {
		ch.Action, ch.Reason = Deleted, "its API is gone"
		return ch
	}
	if err != nil {
		ch.Action, ch.Err = Failed, objErr(e.ObjectRef, "prune", err)
		return ch
	}
	ns := e.Namespace
	if mp.Scope.Name() != meta.RESTScopeNameNamespace {
		ns = ""
	}
	md, err := m.metadata.Resource(mp.Resource).Namespace(ns).Get(ctx, e.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ch.Action, ch.Reason = Deleted, "already gone"
		return ch
	}
	if err != nil {
		ch.Action, ch.Err = Failed, objErr(e.ObjectRef, "prune: read", err)
		return ch
	}
	ch.UID = md.UID
	switch {
	case md.Labels[LabelOwner] != opts.Owner:
		return skip(fmt.Sprintf("owner label is %q, not %q", md.Labels[LabelOwner], opts.Owner))
	case md.Annotations[AnnotationPrune] == PruneDisabled:
		return skip(AnnotationPrune + ": " + PruneDisabled)
	case ignoreValue(md.Annotations) == "true" || ignoreValue(md.Annotations) == IgnoreSyncOnly:
		return skip("ignore annotation " + ignoreValue(md.Annotations))
	case md.DeletionTimestamp != nil:
		ch.Action, ch.Reason = Deleted, "already being deleted"
		return ch
	}
	bg := metav1.DeletePropagationBackground
	uid := md.UID
	err = m.resource(mp, ns).Delete(ctx, e.Name, metav1.DeleteOptions{
		PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		ch.Action, ch.Err = Failed, objErr(e.ObjectRef, "prune: delete", err)
		return ch
	}
	ch.Action = Deleted
	return ch
}
