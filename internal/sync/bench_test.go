package sync_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	stdsync "sync"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	ksync "imagebot.dev/imagebot/internal/sync"
)

// benchObjects returns 10 Namespaces and 1,000 objects across them: per namespace 33
// Deployments, 33 Services and 34 ConfigMaps. Deployments have replicas 0 so that the kwok
// node (250 pods) and the 2-core machine are not the bottleneck (a drift scales them up);
// Services are headless, the test cluster's service range being a /24.
func benchObjects(prefix string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for n := range 10 {
		ns := fmt.Sprintf("%s-%d", prefix, n)
		out = append(out, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}})
		for i := range 34 {
			name := fmt.Sprintf("app-%02d", i)
			out = append(out, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": name + "-config", "namespace": ns, "labels": map[string]any{"app": name}},
				"data": map[string]any{"LOG_LEVEL": "info", "FEATURE_X": "true", "GREETING": fmt.Sprintf("hello from %s/%s", ns, name),
					"config.yaml": "server:\n  port: 8080\n  timeout: 30s\ncache:\n  size: 128Mi\n"},
			}})
			if i == 33 {
				continue
			}
			out = append(out, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "Service",
				"metadata": map[string]any{"name": name, "namespace": ns, "labels": map[string]any{"app": name}},
				"spec": map[string]any{"selector": map[string]any{"app": name}, "clusterIP": "None",
					"ports": []any{map[string]any{"name": "http", "port": int64(80), "targetPort": int64(8080)}}},
			}})
			out = append(out, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "apps/v1", "kind": "Deployment",
				"metadata": map[string]any{"name": name, "namespace": ns, "labels": map[string]any{"app": name},
					"annotations": map[string]any{"imagebot.dev/automated": "true", "imagebot.dev/tag.app": "semver:~1.8"}},
				"spec": map[string]any{
					"replicas": int64(0),
					"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
					"template": map[string]any{
						"metadata": map[string]any{"labels": map[string]any{"app": name}},
						"spec": map[string]any{"containers": []any{
							map[string]any{"name": "app", "image": "registry.example.com/team/" + name + ":1.8.0",
								"ports":     []any{map[string]any{"containerPort": int64(8080)}},
								"envFrom":   []any{map[string]any{"configMapRef": map[string]any{"name": name + "-config"}}},
								"resources": map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "64Mi"}}},
							map[string]any{"name": "sidecar", "image": "nginx:1.16"},
						}},
					},
				},
			}})
		}
	}
	return out
}

var benchSeq struct {
	stdsync.Mutex
	n int
}

func nextPrefix(kind string) string {
	benchSeq.Lock()
	defer benchSeq.Unlock()
	benchSeq.n++
	return fmt.Sprintf("b%s%d", kind, benchSeq.n)
}

// BenchmarkColdApply1000 applies 1,000 objects (and 10 namespaces) that do not exist yet:
// each iteration uses fresh namespaces.
func BenchmarkColdApply1000(b *testing.B) {
	c := cluster(b)
	var n counter
	m := newManager(b, countedConfig(c.Config, &n))
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		prefix := nextPrefix("cold")
		objs := benchObjects(prefix)
		s := newSyncer(b, m, ksync.SyncerOptions{Name: prefix, HealthTimeout: -1})
		n.reset()
		b.StartTimer()
		start := time.Now()
		res, err := s.Sync(ctxFor(b, 5*time.Minute), "rev1", objs)
		total += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if res.Changes.Count(ksync.Created) != len(objs) {
			b.Fatalf("created %s", res.Changes.Summary())
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/sync")
	b.ReportMetric(float64(n.all.Load()), "requests/sync")
	b.ReportMetric(float64(n.writes.Load()), "writes/sync")
}

// warm is one applied set of 1,000 objects shared by the no-change and drift benchmarks.
var warm struct {
	once stdsync.Once
	objs []*unstructured.Unstructured
}

func warmSet(b *testing.B) []*unstructured.Unstructured {
	c := cluster(b)
	warm.once.Do(func() {
		warm.objs = benchObjects("bwarm")
		m := newManager(b, c.Config)
		s, err := ksync.NewSyncer(m, ksync.SyncerOptions{Name: "bwarm", HealthTimeout: -1})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Sync(ctxFor(b, 5*time.Minute), "rev1", warm.objs); err != nil {
			b.Fatal(err)
		}
	})
	if warm.objs == nil {
		b.Fatal("warm set failed")
	}
	return warm.objs
}

// BenchmarkNoChangeSync1000 syncs the unchanged warm set: time, requests, writes (must be 0).
func BenchmarkNoChangeSync1000(b *testing.B) {
	objs := warmSet(b)
	c := cluster(b)
	for _, tc := range []struct {
		name    string
		compare ksync.CompareMode
		watch   bool
	}{
		{"cached/watcher=off", ksync.CompareCached, false},
		{"cached/watcher=on", ksync.CompareCached, true},
		{"dryrun/watcher=off", ksync.CompareDryRun, false},
		{"dryrun/watcher=on", ksync.CompareDryRun, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var n counter
			m := newManager(b, countedConfig(c.Config, &n))
			s := newSyncer(b, m, ksync.SyncerOptions{Name: "bwarm", HealthTimeout: -1, Compare: tc.compare, ResyncInterval: time.Hour})
			ctx := ctxFor(b, 10*time.Minute)
			if tc.watch {
				if _, err := s.Sync(ctx, "rev1", objs); err != nil { // sets the desired set
					b.Fatal(err)
				}
				if err := s.Start(ctx); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			n.reset()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := s.Sync(ctx, "rev1", objs)
				if err != nil {
					b.Fatal(err)
				}
				if res.Changes.Count(ksync.Unchanged) != len(objs) {
					b.Fatalf("not unchanged: %s", res.Changes.Summary())
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(n.all.Load())/float64(b.N), "requests/sync")
			b.ReportMetric(float64(n.writes.Load())/float64(b.N), "writes/sync")
			b.ReportMetric(float64(n.dryRuns.Load())/float64(b.N), "dryruns/sync")
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
			b.ReportMetric(float64(ms.Sys)/(1<<20), "sys-MB")
		})
	}
}

// BenchmarkDriftCorrection scales a Deployment of the warm set (as `kubectl scale` does,
// through the scale subresource) and measures until imagebot has set it back; 50 drifts per
// iteration, on rotating Deployments.
func BenchmarkDriftCorrection(b *testing.B) {
	objs := warmSet(b)
	c := cluster(b)
	cs := kubernetes.NewForConfigOrDie(c.Config)
	m := newManager(b, c.Config)
	s := newSyncer(b, m, ksync.SyncerOptions{Name: "bwarm", HealthTimeout: -1, ResyncInterval: time.Hour})
	ctx := ctxFor(b, 10*time.Minute)
	if _, err := s.Sync(ctx, "rev1", objs); err != nil {
		b.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	var deploys []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			deploys = append(deploys, o)
		}
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range 50 {
			d := deploys[(i*50+j*17)%len(deploys)]
			lat = append(lat, driftOnce(b, ctx, cs, d.GetNamespace(), d.GetName()))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// driftOnce scales ns/name to 3 and returns the time until it is back at 0.
func driftOnce(b *testing.B, ctx context.Context, cs kubernetes.Interface, ns, name string) time.Duration {
	w, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	start := time.Now()
	_, err = cs.AppsV1().Deployments(ns).UpdateScale(ctx, name, &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}},
		metav1.UpdateOptions{FieldManager: "kubectl"})
	if err != nil {
		b.Fatal(err)
	}
	scaled := false
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				b.Fatal("watch closed")
			}
			if ev.Type != watch.Modified {
				continue
			}
			u, err := kruntime.DefaultUnstructuredConverter.ToUnstructured(ev.Object)
			if err != nil {
				b.Fatal(err)
			}
			r, _, _ := unstructured.NestedInt64(u, "spec", "replicas")
			if r == 3 {
				scaled = true
			} else if r == 0 && scaled {
				return time.Since(start)
			}
		case <-timeout:
			b.Fatalf("%s/%s not set back within 10s", ns, name)
		}
	}
}
