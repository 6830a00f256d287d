package sync

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// TestWatcherStaleCopy: after imagebot writes an object, the informer's older copy is not
// served until the informer has seen the write.
func TestWatcherStaleCopy(t *testing.T) {
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	cm := func(sum string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("ConfigMap")
		u.SetNamespace("ns")
		u.SetName("a")
		u.SetAnnotations(map[string]string{AnnotationChecksum: sum})
		return u
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			return &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMapList",
				"metadata": map[string]any{"resourceVersion": "1"}}, Items: []unstructured.Unstructured{*cm("c1")}}, nil
		},
		WatchFuncWithContext: func(_ context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w := watch.NewFakeWithChanSize(2, false)
			if o.SendInitialEvents != nil && *o.SendInitialEvents { // client-go's streaming list
				w.Add(cm("c1"))
				bm := &unstructured.Unstructured{}
				bm.SetAPIVersion("v1")
				bm.SetKind("ConfigMap")
				bm.SetResourceVersion("1")
				bm.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
				w.Action(watch.Bookmark, bm)
			}
			return w, nil
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
	stop := make(chan struct{})
	defer close(stop)
	go inf.Run(stop)
	deadline := time.Now().Add(10 * time.Second)
	for !inf.HasSynced() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	w := newWatcher(nil, "owner", time.Millisecond, time.Millisecond, nil)
	w.informers[groupKey{gvr, "ns"}] = &informer{inf: inf, stop: make(chan struct{}), failed: make(chan struct{})}

	if _, found, ok := w.lookup(gvr, "ns", "a"); !ok || !found {
		t.Fatalf("lookup before any write: found %v ok %v", found, ok)
	}
	w.noteWrite(gvr, "ns", "a", "c2")
	if _, found, ok := w.lookup(gvr, "ns", "a"); !ok || found {
		t.Fatalf("a copy older than our write was served: found %v ok %v", found, ok)
	}
	if err := inf.GetIndexer().Update(cm("c2")); err != nil {
		t.Fatal(err)
	}
	if u, found, ok := w.lookup(gvr, "ns", "a"); !ok || !found || u.GetAnnotations()[AnnotationChecksum] != "c2" {
		t.Fatalf("lookup after the informer caught up: found %v ok %v", found, ok)
	}
	if _, found, ok := w.lookup(gvr, "ns", "missing"); !ok || found {
		t.Fatalf("lookup of a missing object: found %v ok %v", found, ok)
	}
}
