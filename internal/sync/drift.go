package sync

import (
	"context"
	stdsync "sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// Drift timing defaults.
const (
	DefaultDriftDebounce = 100 * time.Millisecond
	DefaultDriftMaxDelay = time.Second
)

// watcher watches the objects of one Syncer with informers (one per resource and namespace,
// selected by the owner label, plus one for HPAs per namespace with scalable objects), tells
// drift from status-only changes, and hands debounced batches of drifted objects to onDrift.
// It also serves the informers' caches to Apply, Wait and the drift checks.
type watcher struct {
	m                  *Manager
	owner              string
	debounce, maxDelay time.Duration
	onDrift            func(ctx context.Context, reasons map[ObjectRef]string)

	mu        stdsync.Mutex
	ctx       context.Context // nil until started
	desired   map[ObjectRef]*unstructured.Unstructured
	hpaDecl   []*unstructured.Unstructured
	informers map[groupKey]*informer
	pending   map[ObjectRef]string
	retries   map[ObjectRef]int
	written   map[objectKey]string // checksums written and not yet seen by the informers
	kick      chan struct{}
}

type objectKey struct {
	groupKey
	name string
}

// Retry of failed corrections: 1s, doubling, at most maxDriftRetries times; the periodic
// resync takes over after that.
const maxDriftRetries = 8

// retryLater queues ref again after a backoff, unless it failed too often.
func (w *watcher) retryLater(ref ObjectRef, reason string) {
	w.mu.Lock()
	n := w.retries[ref]
	w.retries[ref] = n + 1
	ctx := w.ctx
	w.mu.Unlock()
	if n >= maxDriftRetries || ctx == nil {
		return
	}
	t := time.NewTimer(time.Second << n)
	go func() {
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			w.enqueue(ref, reason)
		}
	}()
}

func (w *watcher) succeeded(ref ObjectRef) {
	w.mu.Lock()
	delete(w.retries, ref)
	w.mu.Unlock()
}

type informer struct {
	inf      cache.SharedIndexInformer
	stop     chan struct{}
	stopOnce stdsync.Once
	failed   chan struct{} // closed when the watch is refused (e.g. forbidden)
}

func (i *informer) close() { i.stopOnce.Do(func() { close(i.stop) }) }

func (i *informer) usable() bool {
	select {
	case <-i.failed:
		return false
	default:
		return i.inf.HasSynced()
	}
}

func newWatcher(m *Manager, owner string, debounce, maxDelay time.Duration, onDrift func(context.Context, map[ObjectRef]string)) *watcher {
	return &watcher{m: m, owner: owner, debounce: debounce, maxDelay: maxDelay, onDrift: onDrift,
		desired: map[ObjectRef]*unstructured.Unstructured{}, informers: map[groupKey]*informer{},
		pending: map[ObjectRef]string{}, retries: map[ObjectRef]int{}, written: map[objectKey]string{},
		kick: make(chan struct{}, 1)}
}

// start runs the informers for the desired set and the debounce loop until ctx ends.
func (w *watcher) start(ctx context.Context, wg *stdsync.WaitGroup) {
	w.mu.Lock()
	w.ctx = ctx
	w.ensureInformersLocked()
	w.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.loop(ctx)
		w.mu.Lock()
		for k, i := range w.informers {
			i.close()
			delete(w.informers, k)
		}
		w.ctx = nil
		w.mu.Unlock()
	}()
}

// setDesired replaces the desired set (rendered objects, namespaces set).
func (w *watcher) setDesired(objs []*unstructured.Unstructured) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.desired = make(map[ObjectRef]*unstructured.Unstructured, len(objs))
	w.hpaDecl = nil
	for _, o := range objs {
		w.desired[RefOf(o)] = o
		if isHPA(o) {
			w.hpaDecl = append(w.hpaDecl, o)
		}
	}
	if w.ctx != nil {
		w.ensureInformersLocked()
	}
}

// ensureInformersLocked starts the informers the desired set needs and stops the others.
func (w *watcher) ensureInformersLocked() {
	need := map[groupKey]bool{}
	for _, o := range w.desired {
		mp, err := w.m.mapping(o.GroupVersionKind())
		if err != nil {
			continue // not applied yet; the next setDesired retries
		}
		ns := o.GetNamespace()
		if mp.Scope.Name() != meta.RESTScopeNameNamespace {
			ns = ""
		}
		need[groupKey{mp.Resource, ns}] = true
		if _, ok, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas"); ok && ns != "" {
			need[groupKey{hpaGVR, ns}] = true
		}
	}
	for k, i := range w.informers {
		if !need[k] {
			i.close()
			delete(w.informers, k)
		}
	}
	for k := range need {
		if _, ok := w.informers[k]; !ok {
			w.informers[k] = w.startInformer(k)
		}
	}
}

func (w *watcher) startInformer(k groupKey) *informer {
	tweak := func(o *metav1.ListOptions) { o.LabelSelector = LabelOwner + "=" + w.owner }
	if k.gvr == hpaGVR {
		tweak = nil
	}
	gi := dynamicinformer.NewFilteredDynamicInformer(w.m.dynamic, k.gvr, k.ns, 0, cache.Indexers{}, tweak)
	i := &informer{inf: gi.Informer(), stop: make(chan struct{}), failed: make(chan struct{})}
	var failOnce stdsync.Once
	_ = i.inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsNotFound(err) {
			failOnce.Do(func() { close(i.failed) })
			i.close() // fall back to reads through the API for this group
		}
	})
	if k.gvr != hpaGVR {
		_, _ = i.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { w.check(obj) },
			UpdateFunc: func(oldObj, newObj any) {
				o, _ := oldObj.(*unstructured.Unstructured)
				n, _ := newObj.(*unstructured.Unstructured)
				if o != nil && n != nil && o.GetResourceVersion() == n.GetResourceVersion() {
					return
				}
				w.check(newObj)
			},
			DeleteFunc: func(obj any) {
				if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = d.Obj
				}
				if u, ok := obj.(*unstructured.Unstructured); ok {
					w.enqueue(RefOf(u), "deleted")
				}
			},
		})
	}
	go i.inf.Run(i.stop)
	return i
}

// check queues obj when it differs from its declared configuration.
func (w *watcher) check(obj any) {
	live, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	ref := RefOf(live)
	w.mu.Lock()
	want := w.desired[ref]
	hpaDecl := w.hpaDecl
	w.mu.Unlock()
	if want == nil || ignoreValue(live.GetAnnotations()) == "true" || live.GetDeletionTimestamp() != nil {
		return
	}
	strip := false
	if _, has, _ := unstructured.NestedFieldNoCopy(want.Object, "spec", "replicas"); has {
		hpas, _ := w.hpas(ref.Namespace)
		strip = hpaTargets(hpaDecl, want) || hpaTargets(hpas, want)
	}
	prepared := prepare(want, w.owner, strip)
	if reason := diffCached(prepared, live, w.m.takeOverSet(), w.m.opts.FieldManager); reason != "" {
		w.enqueue(ref, reason)
	}
}

func (w *watcher) enqueue(ref ObjectRef, reason string) {
	w.mu.Lock()
	if _, ok := w.desired[ref]; !ok {
		w.mu.Unlock()
		return
	}
	w.pending[ref] = reason
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// loop hands queued objects to onDrift once no event came for debounce, or maxDelay after
// the first one.
func (w *watcher) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		first := time.Now()
		timer := time.NewTimer(w.debounce)
	collect:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-w.kick:
				timer.Reset(max(0, min(w.debounce, w.maxDelay-time.Since(first))))
			case <-timer.C:
				break collect
			}
		}
		w.mu.Lock()
		batch := w.pending
		w.pending = map[ObjectRef]string{}
		w.mu.Unlock()
		if len(batch) > 0 {
			w.onDrift(ctx, batch)
		}
	}
}

// lookup serves Apply and Wait from the informers (cacheSource).
func (w *watcher) lookup(gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, bool, bool) {
	w.mu.Lock()
	i := w.informers[groupKey{gvr, ns}]
	w.mu.Unlock()
	if i == nil || !i.usable() {
		return nil, false, false
	}
	key := name
	if ns != "" {
		key = ns + "/" + name
	}
	obj, found, err := i.inf.GetIndexer().GetByKey(key)
	if err != nil {
		return nil, false, false
	}
	if !found {
		return nil, false, true
	}
	u, _ := obj.(*unstructured.Unstructured)
	if u == nil {
		return nil, false, true
	}
	k := objectKey{groupKey{gvr, ns}, name}
	w.mu.Lock()
	defer w.mu.Unlock()
	if want, ok := w.written[k]; ok {
		if u.GetAnnotations()[AnnotationChecksum] != want {
			return nil, false, true // stale: not yet updated with our last write
		}
		delete(w.written, k)
	}
	return u, true, true
}

func (w *watcher) noteWrite(gvr schema.GroupVersionResource, ns, name, checksum string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.written) > 100_000 { // bounded: entries leave when the informer catches up
		clear(w.written)
	}
	w.written[objectKey{groupKey{gvr, ns}, name}] = checksum
}

func (w *watcher) hpas(ns string) ([]*unstructured.Unstructured, bool) {
	w.mu.Lock()
	i := w.informers[groupKey{hpaGVR, ns}]
	w.mu.Unlock()
	if i == nil || !i.usable() {
		return nil, false
	}
	var out []*unstructured.Unstructured
	for _, o := range i.inf.GetStore().List() {
		if u, ok := o.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	return out, true
}

// waitSynced waits (at most timeout) for the informers to list their objects.
func (w *watcher) waitSynced(ctx context.Context, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		pending := false
		w.mu.Lock()
		for _, i := range w.informers {
			select {
			case <-i.failed:
			default:
				if !i.inf.HasSynced() {
					pending = true
				}
			}
		}
		w.mu.Unlock()
		if !pending {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
