package sync

import (
	"context"
	stdsync "sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// cacheSource serves live objects from informers (the drift watcher). lookup reports ok=false
// when it has no synced cache for the group, found when the object is in it.
//
// noteWrite tells the cache the checksum imagebot just applied to an object: until its copy
// carries that checksum, the copy is stale and lookup reports it not found (the reader then
// GETs it), so that two syncs in quick succession do not compare with what the first replaced.
type cacheSource interface {
	lookup(gvr schema.GroupVersionResource, namespace, name string) (obj *unstructured.Unstructured, found, ok bool)
	hpas(namespace string) ([]*unstructured.Unstructured, bool)
	noteWrite(gvr schema.GroupVersionResource, namespace, name, checksum string)
}

var hpaGVR = schema.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}

// liveReader reads live objects for one apply, prune or health poll with few requests: a
// cache hit costs nothing; else the first read of a kind and namespace LISTs the objects with
// the owner label, and a miss there costs one metadata-only LIST of the group (to find objects
// that exist without the label) and a GET only for those. Without an owner, it GETs.
type liveReader struct {
	m     *Manager
	owner string
	cache cacheSource // may be nil

	mu     stdsync.Mutex
	groups map[groupKey]*liveGroup
	hpa    map[string]*hpaList
}

type groupKey struct {
	gvr schema.GroupVersionResource
	ns  string
}

type liveGroup struct {
	once    stdsync.Once
	objs    map[string]*unstructured.Unstructured
	listErr error

	namesOnce stdsync.Once
	names     map[string]bool // every existing name (metadata LIST), nil when unknown
}

type hpaList struct {
	once  stdsync.Once
	items []*unstructured.Unstructured
}

func (m *Manager) newReader(owner string, cache cacheSource) *liveReader {
	return &liveReader{m: m, owner: owner, cache: cache, groups: map[groupKey]*liveGroup{}, hpa: map[string]*hpaList{}}
}

// get returns the live object (nil when it does not exist).
func (r *liveReader) get(ctx context.Context, mp *meta.RESTMapping, ns, name string) (*unstructured.Unstructured, error) {
	if mp.Scope.Name() != meta.RESTScopeNameNamespace {
		ns = ""
	}
	if r.cache != nil {
		if obj, found, ok := r.cache.lookup(mp.Resource, ns, name); ok && found {
			return obj, nil
		} else if ok {
			return r.getOne(ctx, mp, ns, name)
		}
	}
	if r.owner == "" {
		return r.getOne(ctx, mp, ns, name)
	}
	g := r.group(mp.Resource, ns)
	g.once.Do(func() {
		list, err := r.m.resource(mp, ns).List(ctx, metav1.ListOptions{LabelSelector: LabelOwner + "=" + r.owner})
		if err != nil {
			g.listErr = err
			return
		}
		g.objs = make(map[string]*unstructured.Unstructured, len(list.Items))
		for i := range list.Items {
			g.objs[list.Items[i].GetName()] = &list.Items[i]
		}
	})
	if g.listErr != nil {
		return r.getOne(ctx, mp, ns, name)
	}
	if obj, ok := g.objs[name]; ok {
		return obj, nil
	}
	g.namesOnce.Do(func() {
		list, err := r.m.metadata.Resource(mp.Resource).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		g.names = make(map[string]bool, len(list.Items))
		for _, it := range list.Items {
			g.names[it.Name] = true
		}
	})
	if g.names != nil && !g.names[name] {
		return nil, nil
	}
	return r.getOne(ctx, mp, ns, name)
}

func (r *liveReader) group(gvr schema.GroupVersionResource, ns string) *liveGroup {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := groupKey{gvr, ns}
	g := r.groups[k]
	if g == nil {
		g = &liveGroup{}
		r.groups[k] = g
	}
	return g
}

func (r *liveReader) getOne(ctx context.Context, mp *meta.RESTMapping, ns, name string) (*unstructured.Unstructured, error) {
	obj, err := r.m.resource(mp, ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return obj, err
}

// hpas returns the HorizontalPodAutoscalers of namespace ns (none when they cannot be read).
func (r *liveReader) hpas(ctx context.Context, ns string) []*unstructured.Unstructured {
	if r.cache != nil {
		if items, ok := r.cache.hpas(ns); ok {
			return items
		}
	}
	r.mu.Lock()
	h := r.hpa[ns]
	if h == nil {
		h = &hpaList{}
		r.hpa[ns] = h
	}
	r.mu.Unlock()
	h.once.Do(func() {
		list, err := r.m.dynamic.Resource(hpaGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		for i := range list.Items {
			h.items = append(h.items, &list.Items[i])
		}
	})
	return h.items
}

// hpaTargets reports whether an HPA among hpas targets obj.
func hpaTargets(hpas []*unstructured.Unstructured, obj *unstructured.Unstructured) bool {
	gvk := obj.GroupVersionKind()
	for _, h := range hpas {
		if h.GetNamespace() != obj.GetNamespace() {
			continue
		}
		apiVersion, _, _ := unstructured.NestedString(h.Object, "spec", "scaleTargetRef", "apiVersion")
		kind, _, _ := unstructured.NestedString(h.Object, "spec", "scaleTargetRef", "kind")
		name, _, _ := unstructured.NestedString(h.Object, "spec", "scaleTargetRef", "name")
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err == nil && gv.Group == gvk.Group && kind == gvk.Kind && name == obj.GetName() {
			return true
		}
	}
	return false
}

func isHPA(u *unstructured.Unstructured) bool {
	gvk := u.GroupVersionKind()
	return gvk.Group == "autoscaling" && gvk.Kind == "HorizontalPodAutoscaler"
}

// noteWrite passes an applied checksum on to the cache (see cacheSource).
func (r *liveReader) noteWrite(mp *meta.RESTMapping, applied, prepared *unstructured.Unstructured) {
	if r.cache != nil {
		r.cache.noteWrite(mp.Resource, applied.GetNamespace(), applied.GetName(), prepared.GetAnnotations()[AnnotationChecksum])
	}
}
