package sync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// ErrImmutable marks an apply rejected because it changes an immutable field of an object
// that did not opt in to be recreated (imagebot.dev/force: "true").
var ErrImmutable = errors.New("immutable field changed")

// CompareMode chooses how Apply decides that an object is already as declared.
type CompareMode int

const (
	// CompareCached compares with the live object read from a cache or a LIST, and dry-runs
	// only objects whose fields seem to differ while their checksum matches (the default).
	CompareCached CompareMode = iota
	// CompareDryRun dry-run applies every existing object and compares the result with the
	// live object, as fluxcd/pkg/ssa does.
	CompareDryRun
)

// ApplyOptions tunes one Apply.
type ApplyOptions struct {
	// Owner, when set, is written as the owner label and annotation of every object, and
	// scopes the LISTs that read live objects.
	Owner string
	// Force recreates every object whose apply hits an immutable field (the
	// imagebot.dev/force: "true" annotation does it for one object).
	Force   bool
	Compare CompareMode

	cache      cacheSource     // the drift watcher's informers, when running
	freshKinds map[string]bool // "group/Kind" of the CRDs this apply just Established
}

// Apply applies objs server-side in stages (see the package doc) and returns one entry per
// object, and errors.Join of the failures. Objects that are already as declared are not
// written. The objects must have their namespaces set (Render or SetNamespaces).
func (m *Manager) Apply(ctx context.Context, objs []*unstructured.Unstructured, opts ApplyOptions) (*ChangeSet, error) {
	cs := &ChangeSet{}
	r := m.newReader(opts.Owner, opts.cache)
	var desiredHPAs []*unstructured.Unstructured
	for _, o := range objs {
		if isHPA(o) {
			desiredHPAs = append(desiredHPAs, o)
		}
	}
	var stages [3][]*unstructured.Unstructured
	for _, o := range sortedCopy(objs) {
		ref := RefOf(o)
		if ignoreValue(o.GetAnnotations()) == "true" {
			cs.add(Change{Ref: ref, Version: o.GroupVersionKind().Version, Action: Skipped, Reason: "ignore annotation"})
			continue
		}
		clusterScoped := false
		if mp, err := m.mapping(o.GroupVersionKind()); err == nil {
			clusterScoped = mp.Scope.Name() != meta.RESTScopeNameNamespace
		}
		st := stageOf(ref.GroupKind(), clusterScoped)
		stages[st] = append(stages[st], o)
	}
	for st, batch := range stages {
		if len(batch) == 0 {
			continue
		}
		changes := make([]Change, len(batch))
		for i, o := range batch {
			changes[i] = Change{Ref: RefOf(o), Action: Failed, Err: objErr(RefOf(o), "apply", context.Canceled)}
		}
		m.forEach(ctx, len(batch), func(i int) {
			changes[i] = m.applyOne(ctx, r, batch[i], desiredHPAs, opts)
		})
		if st == stageDefinitions && m.afterDefinitions(ctx, changes) {
			opts.freshKinds = scopesFromCRDs(objs)
		}
		for _, c := range changes {
			cs.add(c)
		}
	}
	cs.sort()
	return cs, cs.Err()
}

// afterDefinitions waits for the CRDs just written to be Established (a CRD that is not fails),
// then refreshes discovery so that their kinds map. It reports whether there were any.
func (m *Manager) afterDefinitions(ctx context.Context, changes []Change) bool {
	waited := false
	for i, c := range changes {
		if isCRD(c.Ref.GroupKind()) && (c.Action == Created || c.Action == Configured || c.Action == Recreated) {
			waited = true
			if err := m.waitEstablished(ctx, c.Ref); err != nil {
				changes[i].Action, changes[i].Err = Failed, err
			}
		}
	}
	if waited {
		m.resetDiscovery(0)
	}
	return waited
}

// mappingAfterCRDs maps gvk, waiting (at most CRDTimeout) for discovery to serve a kind whose
// CRD was just Established: the API server publishes it a little later.
func (m *Manager) mappingAfterCRDs(ctx context.Context, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	ctx, cancel := context.WithTimeout(ctx, m.opts.CRDTimeout)
	defer cancel()
	for {
		mp, err := m.mapping(gvk)
		if err == nil || !meta.IsNoMatchError(err) {
			return mp, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
		m.resetDiscovery(200 * time.Millisecond)
	}
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func (m *Manager) waitEstablished(ctx context.Context, ref ObjectRef) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.CRDTimeout)
	defer cancel()
	for {
		crd, err := m.dynamic.Resource(crdGVR).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil && conditionTrue(crd, "Established") {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("not Established")
			}
			return objErr(ref, fmt.Sprintf("wait %v for Established", m.opts.CRDTimeout), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func conditionTrue(u *unstructured.Unstructured, condType string) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		cm, _ := c.(map[string]any)
		if cm["type"] == condType {
			return cm["status"] == "True"
		}
	}
	return false
}

func (m *Manager) takeOverSet() map[string]bool {
	s := make(map[string]bool, len(m.opts.TakeOver))
	for _, n := range m.opts.TakeOver {
		if n != m.opts.FieldManager {
			s[n] = true
		}
	}
	return s
}

// applyOne compares one object with its live state and applies it when they differ.
func (m *Manager) applyOne(ctx context.Context, r *liveReader, obj *unstructured.Unstructured, desiredHPAs []*unstructured.Unstructured, opts ApplyOptions) Change {
	ref := RefOf(obj)
	gvk := obj.GroupVersionKind()
	ch := Change{Ref: ref, Version: gvk.Version}
	fail := func(op string, err error) Change {
		ch.Action, ch.Err = Failed, objErr(ref, op, err)
		return ch
	}
	mp, err := m.mapping(gvk)
	if _, fresh := opts.freshKinds[gvk.Group+"/"+gvk.Kind]; fresh && err != nil && meta.IsNoMatchError(err) {
		mp, err = m.mappingAfterCRDs(ctx, gvk)
	}
	if err != nil {
		if meta.IsNoMatchError(err) {
			err = fmt.Errorf("%w: %s", errUnknownKind, gvk)
		}
		return fail("", err)
	}
	live, err := r.get(ctx, mp, ref.Namespace, ref.Name)
	if err != nil {
		return fail("read live object", err)
	}
	if live != nil {
		ch.UID = live.GetUID()
	}
	if live != nil && ignoreValue(live.GetAnnotations()) == "true" {
		ch.Action, ch.Reason = Skipped, "ignore annotation on the cluster object"
		return ch
	}
	strip := false
	if _, has, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "replicas"); has && live != nil {
		strip = hpaTargets(desiredHPAs, obj) || hpaTargets(r.hpas(ctx, ref.Namespace), obj)
	}
	prepared := prepare(obj, opts.Owner, strip)
	takeOver := m.takeOverSet()

	var reason string
	if opts.Compare == CompareDryRun {
		reason = "not found"
		if live != nil {
			reason = "dry-run"
			if mgr := takeOverManager(live.GetManagedFields(), takeOver, m.opts.FieldManager); mgr != "" {
				reason = "managed fields of " + mgr
			}
		}
	} else {
		reason = diffCached(prepared, live, takeOver, m.opts.FieldManager)
		if reason == "" {
			ch.Action = Unchanged
			return ch
		}
	}
	if live != nil && (reason == "dry-run" || isFieldPath(reason)) {
		dr, err := m.applyObject(ctx, mp, prepared, true)
		if err == nil && sameAfterDryRun(dr, live) {
			ch.Action = Unchanged
			return ch
		}
		if err == nil && reason == "dry-run" {
			reason = "differs from a dry-run apply"
		}
	}
	if live != nil {
		if err := m.takeOver(ctx, mp, live, takeOver, strip); err != nil {
			return fail("take over managed fields", err)
		}
	}
	ch.Action, ch.Reason = Configured, reason
	if live == nil {
		ch.Action, ch.Reason = Created, ""
	}
	applied, err := m.applyObject(ctx, mp, prepared, false)
	if err == nil {
		ch.UID = applied.GetUID()
		r.noteWrite(mp, applied, prepared)
		return ch
	}
	if !isImmutable(err) {
		return fail("apply", err)
	}
	if !opts.Force && obj.GetAnnotations()[AnnotationForce] != "true" {
		return fail("apply", fmt.Errorf("%w (annotate it %s: \"true\" to let imagebot delete and recreate it): %w", ErrImmutable, AnnotationForce, err))
	}
	applied, err = m.recreate(ctx, mp, prepared, live)
	if err != nil {
		return fail("recreate (immutable field changed)", err)
	}
	ch.UID = applied.GetUID()
	r.noteWrite(mp, applied, prepared)
	ch.Action, ch.Reason = Recreated, "immutable field changed"
	return ch
}

func isFieldPath(reason string) bool {
	return reason != "" && reason != "not found" && reason != "checksum" && !strings.HasPrefix(reason, "managed fields of ")
}

func (m *Manager) applyObject(ctx context.Context, mp *meta.RESTMapping, obj *unstructured.Unstructured, dryRun bool) (*unstructured.Unstructured, error) {
	o := metav1.ApplyOptions{FieldManager: m.opts.FieldManager, Force: true}
	if dryRun {
		o.DryRun = []string{metav1.DryRunAll}
	}
	return m.resource(mp, obj.GetNamespace()).Apply(ctx, obj.GetName(), obj, o)
}

// takeOver patches live's managedFields (see managedFieldsPatch); on a conflict it reads the
// object again and retries once.
func (m *Manager) takeOver(ctx context.Context, mp *meta.RESTMapping, live *unstructured.Unstructured, takeOver map[string]bool, releaseReplicas bool) error {
	res := m.resource(mp, live.GetNamespace())
	for attempt := 0; ; attempt++ {
		patch, err := managedFieldsPatch(live, m.opts.FieldManager, takeOver, releaseReplicas)
		if err != nil || patch == nil {
			return err
		}
		_, err = res.Patch(ctx, live.GetName(), types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: m.opts.FieldManager})
		if err == nil || !apierrors.IsConflict(err) || attempt > 0 {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		if live, err = res.Get(ctx, live.GetName(), metav1.GetOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
	}
}

func isImmutable(err error) bool {
	if !apierrors.IsInvalid(err) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "immutable") || strings.Contains(msg, "Forbidden: updates to")
}

// recreate deletes the live object, waits until it is gone (at most a minute) and applies obj.
func (m *Manager) recreate(ctx context.Context, mp *meta.RESTMapping, obj, live *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	res := m.resource(mp, obj.GetNamespace())
	bg := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &bg}
	if live != nil {
		uid := live.GetUID()
		del.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	if err := res.Delete(ctx, obj.GetName(), del); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return nil, fmt.Errorf("delete: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		cur, err := res.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && live != nil && cur.GetUID() != live.GetUID()) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the deletion: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return m.applyObject(ctx, mp, obj, false)
}
