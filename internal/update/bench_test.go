package update

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// genRepo writes files YAML files under dir/apps/<n/100>/, each with 4 annotated
// Deployments of 2 containers (the benchmark repository of docs/benchmarks.md).
func genRepo(tb testing.TB, dir string, files int) {
	tb.Helper()
	var b strings.Builder
	for n := 0; n < files; n++ {
		b.Reset()
		genFile(&b, n)
		p := filepath.Join(dir, "apps", fmt.Sprint(n/100), fmt.Sprintf("app-%d.yaml", n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

func genFileForTest(w io.Writer) { genFile(w, 7) }

// genFile writes file n of the benchmark repository: 4 annotated Deployments of 2
// containers.
func genFile(b io.Writer, n int) {
	for i := 0; i < 4; i++ {
		fmt.Fprintf(b, `---
# app %d-%d
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%d-%d
  namespace: team-%d
  labels:
    app: app-%d-%d
  annotations:
    imagebot.dev/automated: "true"
    imagebot.dev/tag.main: semver:~1.2
spec:
  replicas: 2
  selector:
    matchLabels:
      app: app-%d-%d
  template:
    metadata:
      labels:
        app: app-%d-%d
    spec:
      containers:
      - name: main
        image: registry.example.com/team/app-%d-%d:1.2.0
        ports:
        - containerPort: 8080
        resources:
          limits: {cpu: 100m, memory: 128Mi}
        env:
        - name: LOG_LEVEL
          value: info
      - name: sidecar
        image: "registry.example.com/team/sidecar:2.0.%d"
        args: ["--port", "9090"]
`, n, i, n, i, n%50, n, i, n, i, n, i, n, i, i)
	}
}

var benchSizes = []int{1000, 5000, 20000}

func benchFinder() *Finder { return &Finder{ValidatePolicy: testValidatePolicy} }

// BenchmarkFind: discovery only, a fresh Finder (no cache) per run.
func BenchmarkFind(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			genRepo(b, dir, n)
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				res, err := benchFinder().Find(context.Background(), dir)
				if err != nil || len(res.Targets) != n*8 {
					b.Fatalf("%v, %d targets", err, len(res.Targets))
				}
			}
			reportRun(b, cpu0)
		})
	}
}

// BenchmarkUpdate: discovery + edit + atomic write of 100 images, a fresh Finder per run.
func BenchmarkUpdate(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			genRepo(b, dir, n)
			ctx := context.Background()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				f := benchFinder()
				res, err := f.Find(ctx, dir)
				if err != nil {
					b.Fatal(err)
				}
				ds := pick100(b, res.Targets, i)
				cs, err := f.Apply(ctx, dir, ds)
				if err != nil || len(cs.Changes) != 100 {
					b.Fatalf("%v, %d changes", err, len(cs.Changes))
				}
			}
			reportRun(b, cpu0)
		})
	}
}

// BenchmarkNoChange: a run that finds every target and changes nothing, cold (fresh
// Finder) and warm (the daemon's Finder, whose cache holds the last results).
func BenchmarkNoChange(b *testing.B) {
	for _, n := range []int{5000} {
		for _, warm := range []bool{false, true} {
			b.Run(fmt.Sprintf("files=%d/warm=%v", n, warm), func(b *testing.B) {
				dir := b.TempDir()
				genRepo(b, dir, n)
				ctx := context.Background()
				f := benchFinder()
				if _, err := f.Find(ctx, dir); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu0 := cpuTime()
				for i := 0; i < b.N; i++ {
					if !warm {
						f = benchFinder()
					}
					res, err := f.Find(ctx, dir)
					if err != nil {
						b.Fatal(err)
					}
					cs, err := f.Apply(ctx, dir, nil)
					if err != nil || !cs.Empty() || len(res.Targets) != n*8 {
						b.Fatal(err)
					}
				}
				reportRun(b, cpu0)
			})
		}
	}
}

// reportRun reports wall and CPU milliseconds per run (CPU: user+system of the whole
// process, so on a machine shared with other work it shows what the run itself cost).
func reportRun(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/run")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/run")
}

// pick100 decides new tags for 100 targets spread over the repository.
func pick100(tb testing.TB, targets []Target, round int) []Decision {
	tb.Helper()
	ds := make([]Decision, 0, 100)
	step := len(targets) / 100
	for i := 0; i < 100; i++ {
		t := targets[i*step]
		p := splitRef(t.Image)
		p.Tag = fmt.Sprintf("1.2.%d", round+1000)
		ref, err := name.ParseReference(p.String())
		if err != nil {
			tb.Fatal(err)
		}
		ds = append(ds, Decision{Target: t, Image: ref})
	}
	return ds
}

// TestUpdateMemory runs the 5,000-file update once and reports the heap it needed (run
// with -run TestUpdateMemory -v; skipped in -short).
func TestUpdateMemory(t *testing.T) {
	if testing.Short() || os.Getenv("IMAGEBOT_BENCH_MEMORY") == "" {
		t.Skip("set IMAGEBOT_BENCH_MEMORY=1")
	}
	dir := t.TempDir()
	genRepo(t, dir, 5000)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	f := benchFinder()
	res, err := f.Find(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Apply(context.Background(), dir, pick100(t, res.Targets, 0)); err != nil {
		t.Fatal(err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("heap in use after the run: %.1f MB (TotalAlloc %.1f MB, Sys %.1f MB)",
		float64(after.HeapInuse)/1e6, float64(after.TotalAlloc-before.TotalAlloc)/1e6, float64(after.Sys)/1e6)
}
