package scan_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/policy"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

// counting classifies a scanner's requests: auth (the /v2/ ping, tokens), listings and
// metadata (manifests, blobs).
type counting struct {
	inner               http.RoundTripper
	auth, listing, meta atomic.Int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	switch p := r.URL.Path; {
	case strings.HasSuffix(p, "/tags/list"):
		c.listing.Add(1)
	case strings.Contains(p, "/manifests/") || strings.Contains(p, "/blobs/"):
		c.meta.Add(1)
	default:
		c.auth.Add(1)
	}
	return c.inner.RoundTrip(r)
}

func (c *counting) reset() { c.auth.Store(0); c.listing.Store(0); c.meta.Store(0) }

func (c *counting) report(b *testing.B, n int) {
	b.ReportMetric(float64(c.listing.Load())/float64(n), "listings/op")
	b.ReportMetric(float64(c.meta.Load())/float64(n), "metadata-reqs/op")
	b.ReportMetric(float64(c.auth.Load())/float64(n), "auth-reqs/op")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// hookTimes wraps a Scheduler to note when a webhook named each repository. It is a
// TagTriggerer as the Scheduler is, so that the webhook tells the pushed tag as it does in
// the daemon: a scan that lists the repository before the registry links the tag is then
// repeated (with Trigger alone it is not, and the tag waits for the next interval).
type hookTimes struct {
	next *scan.Scheduler
	mu   sync.Mutex
	at   map[string]time.Time
}

func (h *hookTimes) note(r name.Repository) {
	h.mu.Lock()
	if _, ok := h.at[r.Name()]; !ok {
		h.at[r.Name()] = time.Now()
	}
	h.mu.Unlock()
}

func (h *hookTimes) Trigger(r name.Repository) bool { h.note(r); return h.next.Trigger(r) }

func (h *hookTimes) TriggerTag(r name.Repository, tag string) bool {
	h.note(r)
	return h.next.TriggerTag(r, tag)
}

// BenchmarkRegistryScan measures the scanner against Debian's distribution registry holding
// 200 repositories × 1,000 tags (20 "release-NN" candidates each, every fifth a
// linux/amd64+arm64 index; the rest on one shared image), with the policy glob:release-*
// (build times needed). -short uses 20 repositories. Run with -benchtime=5x: each
// sub-benchmark reports medians over its iterations.
//
//	IMAGEBOT_BIN_DIR=$(bash hack/tools.sh) go test -run '^$' -bench BenchmarkRegistryScan -benchtime 5x ./internal/scan/
func BenchmarkRegistryScan(b *testing.B) {
	repos, tagsPer, cands := 200, 1000, 20
	if testing.Short() {
		repos = 20
	}
	var hook http.Handler = http.NotFoundHandler()
	var hookMu sync.Mutex
	var notes, lastNote atomic.Int64 // notifications received, and when the last came (UnixNano)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		notes.Add(1)
		lastNote.Store(time.Now().UnixNano())
		hookMu.Lock()
		h := hook
		hookMu.Unlock()
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	const token = "bench-token"
	env := testenv.New(b, testenv.Options{Registry: true, RegistryOptions: testenv.RegistryOptions{
		NotifyURL: srv.URL, NotifyHeaders: map[string]string{"Authorization": "Bearer " + token}}})
	reg := env.Registry
	start := time.Now()
	l := newLayout(b, filepath.Join(reg.Dir, "data"))
	names := make([]name.Repository, repos)
	for i := range repos {
		p := fmt.Sprintf("bench/r%03d", i)
		l.benchRepo(b, p, tagsPer, cands)
		names[i] = repoOf(b, reg.Host, p)
	}
	b.Logf("setup: %d repositories × %d tags written in %s", repos, tagsPer, time.Since(start).Round(time.Millisecond))

	pol, err := policy.Parse("glob:release-*")
	if err != nil {
		b.Fatal(err)
	}
	need := scan.Need{Match: pol.Match, BuildTime: pol.NeedsBuildTime()}
	cnt := &counting{inner: http.DefaultTransport.(*http.Transport).Clone()}
	opts := func(c *scan.Cache) scan.Options {
		// Loopback: the bucket is opened wide to measure the scanner, not the limiter.
		return scan.Options{Transport: cnt, Cache: c, Limit: scan.Limit{RPS: 100000, Burst: 1000}}
	}
	scanAll := func(b *testing.B, sc *scan.Scanner) {
		var wg sync.WaitGroup
		work := make(chan name.Repository)
		for range scan.DefaultWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range work {
					res, err := sc.Scan(context.Background(), r, need)
					if err != nil {
						b.Error(err)
						continue
					}
					if len(res.Tags) != tagsPer || len(res.Images) != cands || res.Images["release-19"].Created.IsZero() {
						b.Errorf("%s: %d tags, %d images", r, len(res.Tags), len(res.Images))
					}
				}
			}()
		}
		for _, r := range names {
			work <- r
		}
		close(work)
		wg.Wait()
	}
	timed := func(b *testing.B, setup func() *scan.Scanner) {
		var ds []time.Duration
		cnt.reset()
		for b.Loop() {
			b.StopTimer()
			sc := setup()
			b.StartTimer()
			t0 := time.Now()
			scanAll(b, sc)
			ds = append(ds, time.Since(t0))
		}
		cnt.report(b, len(ds))
		b.ReportMetric(float64(median(ds).Milliseconds()), "median-ms")
	}

	b.Run("cold", func(b *testing.B) {
		timed(b, func() *scan.Scanner { return scan.New(opts(nil)) })
	})
	warm := scan.New(opts(nil))
	scanAll(b, warm)
	b.Run("warm", func(b *testing.B) {
		timed(b, func() *scan.Scanner { return warm })
	})
	dir := b.TempDir()
	c, err := scan.OpenCache(dir, scan.CacheOptions{})
	if err != nil {
		b.Fatal(err)
	}
	scanAll(b, scan.New(opts(c)))
	c.Close()
	b.Run("restart", func(b *testing.B) {
		timed(b, func() *scan.Scanner {
			if c != nil {
				c.Close()
			}
			if c, err = scan.OpenCache(dir, scan.CacheOptions{}); err != nil {
				b.Fatal(err)
			}
			return scan.New(opts(c))
		})
		c.Close()
		c = nil
	})
	if fi, err := os.Stat(filepath.Join(dir, "scan.db")); err == nil {
		b.Logf("cache file: %d KiB for %d repositories", fi.Size()>>10, repos)
	}

	b.Run("webhook", func(b *testing.B) {
		got := make(chan scan.Update, 1000)
		sched := scan.NewScheduler(scan.New(opts(nil)), scan.SchedulerOptions{Interval: time.Hour,
			OnUpdate: func(u scan.Update) { got <- u }})
		times := &hookTimes{next: sched, at: map[string]time.Time{}}
		h, err := scan.NewWebhook(scan.WebhookOptions{Format: scan.FormatDistribution, Token: token, Trigger: times})
		if err != nil {
			b.Fatal(err)
		}
		hookMu.Lock()
		hook = h
		hookMu.Unlock()
		for i, r := range names {
			sched.Watch(fmt.Sprint(i), scan.Watch{Repo: r, Need: need})
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sched.Start(ctx)
		defer sched.Stop()
		for range repos {
			select {
			case <-got:
			case <-time.After(5 * time.Minute):
				b.Fatal("first scans did not finish")
			}
		}
		// Every manifest and blob request of the phases before made the registry queue a pull
		// notification, and while the hook answered 404 it retried the first of them and
		// held the rest: about 90,000 at 200 repositories, drained here at 1,500-1,800 a
		// second. A push's notification waits behind that queue, so wait until it is empty
		// (no notification for 2s) before timing pushes.
		t0, before := time.Now(), notes.Load()
		for time.Since(time.Unix(0, lastNote.Load())) < 2*time.Second {
			if time.Since(t0) > 10*time.Minute {
				b.Fatal("the registry's notification queue did not drain in 10 minutes")
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.Logf("first scans done; the registry's notification queue drained %s later (%d notifications in all, %d after the first scans)",
			time.Since(t0).Round(time.Second), notes.Load(), notes.Load()-before)
		var fromHook, fromPush, pushes []time.Duration
		i := 0
		for b.Loop() {
			b.StopTimer()
			repo := names[i%len(names)]
			tag := fmt.Sprintf("release-new-%d", i)
			i++
			times.mu.Lock()
			delete(times.at, repo.Name())
			times.mu.Unlock()
			b.StartTimer()
			t0 := time.Now()
			if _, err := reg.Push(ctx, strings.TrimPrefix(repo.RepositoryStr(), ""), tag, testenv.ImageSpec{Created: time.Now()}); err != nil {
				b.Fatal(err)
			}
			pushed := time.Now()
			pushes = append(pushes, pushed.Sub(t0))
			deadline := time.After(30 * time.Second)
			var last []string // what each update of repo said of tag, for a failure
		wait:
			for {
				select {
				case u := <-got:
					if u.Repo.Name() != repo.Name() {
						continue
					}
					if u.Result != nil {
						_, listed := slices.BinarySearch(u.Result.Tags, tag)
						last = append(last, fmt.Sprintf("err=%v listed=%v tag error=%v", u.Err, listed, u.Result.TagErrors[tag]))
					} else {
						last = append(last, fmt.Sprintf("err=%v", u.Err))
					}
					if u.Err == nil && u.Result != nil && !u.Result.Images[tag].Created.IsZero() {
						now := time.Now()
						times.mu.Lock()
						fromHook = append(fromHook, now.Sub(times.at[repo.Name()]))
						times.mu.Unlock()
						fromPush = append(fromPush, now.Sub(pushed))
						break wait
					}
				case <-deadline:
					times.mu.Lock()
					at, hooked := times.at[repo.Name()]
					times.mu.Unlock()
					b.Fatalf("%s:%s not visible 30s after its push (webhook received: %v, %s after the push returned; updates of the repository since: %q)",
						repo, tag, hooked, at.Sub(pushed), last)
				}
			}
		}
		b.ReportMetric(float64(median(fromHook).Microseconds())/1000, "webhook-to-visible-ms")
		b.ReportMetric(float64(median(fromPush).Microseconds())/1000, "push-return-to-visible-ms")
		b.ReportMetric(float64(median(pushes).Microseconds())/1000, "push-ms")
	})
}
