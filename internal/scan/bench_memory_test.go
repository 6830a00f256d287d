package scan_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/policy"
	"imagebot.dev/imagebot/internal/scan"
)

// synthetic is a registry that makes up its content: every repository lists tags tags,
// "release-00".."release-19" then "build-NNNN"; release tags are distinct images. It keeps
// only a digest → (repository, release) index, so it weighs little next to the scanner.
type synthetic struct {
	tags int
	mu   sync.Mutex
	docs map[string][2]string // digest → repository, "m:NN" or "c:NN"
}

func (s *synthetic) config(repo string, n int) []byte {
	b, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux",
		"created": time.Date(2024, 1, 1, n, 0, 0, 0, time.UTC), "config": map[string]any{"Labels": map[string]string{"r": repo}}})
	return b
}

func digestOf(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

func (s *synthetic) manifest(repo string, n int) []byte {
	c := s.config(repo, n)
	cd := digestOf(c)
	s.mu.Lock()
	s.docs[cd] = [2]string{repo, "c:" + strconv.Itoa(n)}
	s.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
		"config": map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(c), "digest": cd},
		"layers": []any{}})
	return b
}

func (s *synthetic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	if p == "" {
		w.WriteHeader(200)
		return
	}
	var body []byte
	ct := "application/json"
	switch {
	case strings.HasSuffix(p, "/tags/list"):
		repo := strings.TrimSuffix(p, "/tags/list")
		var b strings.Builder
		fmt.Fprintf(&b, `{"name":%q,"tags":[`, repo)
		for i := range s.tags {
			if i > 0 {
				b.WriteByte(',')
			}
			if i < 20 {
				fmt.Fprintf(&b, `"release-%02d"`, i)
			} else {
				fmt.Fprintf(&b, `"build-%04d"`, i-20)
			}
		}
		b.WriteString("]}")
		body = []byte(b.String())
	case strings.Contains(p, "/manifests/"):
		repo, ref, _ := strings.Cut(p, "/manifests/")
		n := -1
		if t, ok := strings.CutPrefix(ref, "release-"); ok {
			n, _ = strconv.Atoi(t)
		} else {
			s.mu.Lock()
			d, ok := s.docs[ref]
			s.mu.Unlock()
			if ok && strings.HasPrefix(d[1], "m:") {
				n, _ = strconv.Atoi(d[1][2:])
			}
		}
		if n < 0 {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, 404)
			return
		}
		body = s.manifest(repo, n)
		s.mu.Lock()
		s.docs[digestOf(body)] = [2]string{repo, "m:" + strconv.Itoa(n)}
		s.mu.Unlock()
		ct = "application/vnd.docker.distribution.manifest.v2+json"
		w.Header().Set("Docker-Content-Digest", digestOf(body))
	case strings.Contains(p, "/blobs/"):
		_, ref, _ := strings.Cut(p, "/blobs/")
		s.mu.Lock()
		d, ok := s.docs[ref]
		s.mu.Unlock()
		if !ok || !strings.HasPrefix(d[1], "c:") {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, 404)
			return
		}
		n, _ := strconv.Atoi(d[1][2:])
		body = s.config(d[0], n)
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkMemory holds 1,000 repositories × 1,000 tags in a running scheduler (each
// repository's last good result, 20 described tags each) over a persistent cache, and
// reports the Go heap in use and the process RSS once the synthetic in-process registry that
// fed it is closed. -short: 100 repositories.
//
//	go test -run '^$' -bench BenchmarkMemory -benchtime 1x ./internal/scan/
func BenchmarkMemory(b *testing.B) {
	repos := 1000
	if testing.Short() {
		repos = 100
	}
	for b.Loop() {
		reg := &synthetic{tags: 1000, docs: map[string][2]string{}}
		srv := httptest.NewServer(reg)
		host := strings.TrimPrefix(srv.URL, "http://")
		cache, err := scan.OpenCache(b.TempDir(), scan.CacheOptions{})
		if err != nil {
			b.Fatal(err)
		}
		pol, _ := policy.Parse("glob:release-*")
		done := make(chan struct{}, repos)
		cnt := &counting{inner: http.DefaultTransport.(*http.Transport).Clone()}
		sched := scan.NewScheduler(scan.New(scan.Options{Transport: cnt, Cache: cache, Limit: scan.Limit{RPS: 100000, Burst: 1000}}),
			scan.SchedulerOptions{Interval: time.Hour, OnUpdate: func(u scan.Update) {
				if u.Err != nil {
					b.Error(u.Err)
				}
				done <- struct{}{}
			}})
		for i := range repos {
			r := repoOf(b, host, fmt.Sprintf("team%d/app%d", i%50, i))
			sched.Watch(r.Name(), scan.Watch{Repo: r, Need: scan.Need{Match: pol.Match, BuildTime: true}})
		}
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		sched.Start(ctx)
		for range repos {
			<-done
		}
		took := time.Since(start)
		srv.Close()
		reg.docs = nil
		tags := 0
		for _, st := range sched.Status() {
			tags += st.Tags
		}
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MiB")
		b.ReportMetric(float64(rssBytes())/(1<<20), "rss-MiB")
		b.ReportMetric(float64(tags), "tags-held")
		b.ReportMetric(took.Seconds(), "first-scan-s")
		cnt.report(b, 1)
		cancel()
		sched.Stop()
		cache.Close()
	}
}
