package scan_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"imagebot.dev/imagebot/internal/policy"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

// startProfile starts a production-like registry for the test.
func startProfile(t testing.TB, opts testenv.ProfileOptions) *testenv.ProfileRegistry {
	t.Helper()
	p, err := testenv.StartProfileRegistry(ctxT(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// profileKeychain gives the profile's current credentials for its host, anonymous elsewhere.
type profileKeychain struct{ p *testenv.ProfileRegistry }

func (k profileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() != k.p.Host {
		return authn.Anonymous, nil
	}
	return &authn.Basic{Username: k.p.Username, Password: k.p.Password()}, nil
}

// pick scans repo for spec and returns the tag the policy selects, with the result.
func pick(t *testing.T, sc *scan.Scanner, repo name.Repository, spec, current string) (string, *scan.Result) {
	t.Helper()
	pol, err := policy.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sc.Scan(ctxT(t), repo, scan.Need{Match: pol.Match, BuildTime: pol.NeedsBuildTime(), Digest: true})
	if err != nil {
		t.Fatalf("scan %s for %s: %v", repo, spec, err)
	}
	sel, err := pol.Select(res.Candidates(), policy.Candidate{Tag: current}, time.Now())
	if err != nil {
		t.Fatalf("select %s: %v", spec, err)
	}
	return sel.Tag, res
}

// TestProfiles scans each production-like registry the way users' policies do: the seed's
// glob:develop-v* (newest build wins, so every config blob is fetched through the CDN
// redirect) and a semver range, cold and warm.
func TestProfiles(t *testing.T) {
	for _, prof := range []testenv.Profile{testenv.ProfileDockerHub, testenv.ProfileGHCR, testenv.ProfileQuay, testenv.ProfileECR} {
		t.Run(string(prof), func(t *testing.T) {
			p := startProfile(t, testenv.ProfileOptions{Profile: prof, Private: []string{"team/private"}})
			ctx := ctxT(t)
			// develop-v1.0.1 was built last: build-time order picks it, not the highest version.
			builds := map[string]time.Duration{"develop-v1.0.0": 0, "develop-v1.1.0": time.Hour, "develop-v1.0.1": 2 * time.Hour,
				"1.2.0": 0, "1.10.0": time.Hour, "1.9.9": 2 * time.Hour}
			for _, repo := range []string{"team/app", "team/private"} {
				for tag, d := range builds {
					if _, err := p.Push(ctx, repo, tag, testenv.ImageSpec{Created: base.Add(d)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Quay pages tag lists by 50: 120 more tags make three pages.
			dg, err := p.Push(ctx, "team/app", "filler-000", testenv.ImageSpec{Created: base})
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i < 120; i++ {
				if err := p.Tag(ctx, "team/app", dg, fmt.Sprintf("filler-%03d", i)); err != nil {
					t.Fatal(err)
				}
			}
			sc := scan.New(scan.Options{Keychain: profileKeychain{p}})
			for _, path := range []string{"team/app", "team/private"} {
				repo := repoOf(t, p.Host, path)
				p.ResetCounts()
				got, res := pick(t, sc, repo, "glob:develop-v*", "develop-v1.0.0")
				if got != "develop-v1.0.1" {
					t.Errorf("%s glob:develop-v*: picked %s, want develop-v1.0.1 (built last)", path, got)
				}
				if len(res.Tags) != 126 && path == "team/app" {
					t.Errorf("%s: listed %d tags, want 126", path, len(res.Tags))
				}
				c := p.Counts()
				if c.CDNWithAuthorization != 0 || c.CDNRefused != 0 {
					t.Errorf("%s: the CDN saw %d requests with Authorization, refused %d", path, c.CDNWithAuthorization, c.CDNRefused)
				}
				if c.CDNGETs != 3 || c.BlobGETs != 3 {
					t.Errorf("%s: %d config blob GETs, %d CDN GETs; want 3 and 3 (one config per image, through the redirect)", path, c.BlobGETs, c.CDNGETs)
				}
				if c.Pulls != 3 || res.Pulls != c.Pulls || c.ManifestHEADs != 3 {
					t.Errorf("%s: the registry counted %d pulls and %d HEADs, the scanner %d pulls; want 3 pulls (one per image), 3 HEADs", path, c.Pulls, c.ManifestHEADs, res.Pulls)
				}
				if c.RateLimited != 0 {
					t.Errorf("%s: %d 429s", path, c.RateLimited)
				}

				// semver needs no build time: HEADs for digests, no pull, no blob.
				p.ResetCounts()
				got, _ = pick(t, sc, repo, "semver:~1", "1.2.0")
				if got != "1.10.0" {
					t.Errorf("%s semver:~1: picked %s, want 1.10.0", path, got)
				}
				if c := p.Counts(); c.Pulls != 0 || c.BlobGETs != 0 || c.ManifestHEADs != 3 {
					t.Errorf("%s semver: %d pulls, %d blob GETs, %d HEADs; want 0, 0, 3", path, c.Pulls, c.BlobGETs, c.ManifestHEADs)
				}

				// Warm: the listing only.
				p.ResetCounts()
				if got, _ := pick(t, sc, repo, "glob:develop-v*", "develop-v1.0.0"); got != "develop-v1.0.1" {
					t.Errorf("%s warm: picked %s", path, got)
				}
				if c := p.Counts(); c.ManifestGETs+c.ManifestHEADs+c.BlobGETs+c.CDNGETs != 0 || c.TagListGETs == 0 {
					t.Errorf("%s warm scan: %+v; want tag listings only", path, c)
				}
			}
		})
	}
}

// TestProfileAnonymousPrivate: an anonymous scan of a private repository fails as
// unauthorized, naming the repository; the public one beside it scans.
func TestProfileAnonymousPrivate(t *testing.T) {
	p := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileDockerHub, Private: []string{"team/private"}})
	for _, repo := range []string{"team/app", "team/private"} {
		if _, err := p.Push(ctxT(t), repo, "v1", testenv.ImageSpec{Created: base}); err != nil {
			t.Fatal(err)
		}
	}
	sc := scan.New(scan.Options{})
	need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
	_, err := sc.Scan(ctxT(t), repoOf(t, p.Host, "team/private"), need)
	if !errors.Is(err, scan.ErrUnauthorized) || !strings.Contains(err.Error(), p.Host+"/team/private") {
		t.Errorf("anonymous scan of a private repository: %v; want unauthorized, naming it", err)
	}
	if _, err := sc.Scan(ctxT(t), repoOf(t, p.Host, "team/app"), need); err != nil {
		t.Errorf("public repository: %v", err)
	}
}

// TestProfileECRPasswordExpiry: when ECR's password expires the scan fails as unauthorized,
// and the next scan, with the rotated password, works (the session is not kept).
func TestProfileECRPasswordExpiry(t *testing.T) {
	p := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileECR, PasswordTTL: time.Second})
	if _, err := p.Push(ctxT(t), "team/app", "v1", testenv.ImageSpec{Created: base}); err != nil {
		t.Fatal(err)
	}
	sc := scan.New(scan.Options{Keychain: profileKeychain{p}})
	repo := repoOf(t, p.Host, "team/app")
	need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
	if _, err := sc.Scan(ctxT(t), repo, need); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	p.RotatePassword()
	if _, err := sc.Scan(ctxT(t), repo, need); !errors.Is(err, scan.ErrUnauthorized) {
		t.Errorf("scan with the expired password in its session: %v, want unauthorized", err)
	}
	res, err := sc.Scan(ctxT(t), repo, need)
	if err != nil || res.Images["v1"].Created.IsZero() {
		t.Errorf("scan after the rotation: %v, %+v", err, res)
	}
}

// pushBig fills repo with images distinct images, each under tagsPer tags, built an hour
// apart; the newest is "img-(images-1)-t0".
func pushBig(t testing.TB, p *testenv.ProfileRegistry, repo string, images, tagsPer int) {
	t.Helper()
	for i := range images {
		d, err := p.Push(ctxT(t), repo, fmt.Sprintf("img-%03d-t0", i), testenv.ImageSpec{Created: base.Add(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		for j := 1; j < tagsPer; j++ {
			if err := p.Tag(ctxT(t), repo, d, fmt.Sprintf("img-%03d-t%d", i, j)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestBigRepository: glob:* on 900 tags of 300 images (Flux v1's default policy) gets its
// decision with at most one manifest GET per distinct image, and a second scan makes none.
// The rate limit is raised from the default 10/s (at which the 1,502 registry requests of
// this cold scan take about 150 s; docs/benchmarks.md has the 1,000-tag run: 165 s) to keep
// the test short.
func TestBigRepository(t *testing.T) {
	p := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileDockerHub, PullBudget: 1000})
	pushBig(t, p, "library/big", 300, 3)
	cache, err := scan.OpenCache(t.TempDir(), scan.CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	var mu sync.Mutex
	var seen []scan.Progress
	sc := scan.New(scan.Options{Cache: cache, Limit: scan.Limit{RPS: 2000, Burst: 200}})
	pol, _ := policy.Parse("glob:*")
	need := scan.Need{Match: pol.Match, BuildTime: true, Progress: func(pr scan.Progress) {
		mu.Lock()
		seen = append(seen, pr)
		mu.Unlock()
	}}
	repo := repoOf(t, p.Host, "library/big")
	p.ResetCounts()
	res, err := sc.Scan(ctxT(t), repo, need)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := pol.Select(res.Candidates(), policy.Candidate{Tag: "img-000-t0"}, time.Now())
	if err != nil || !strings.HasPrefix(sel.Tag, "img-299-") {
		t.Errorf("Select = %+v, %v; want a tag of img-299 (built last)", sel, err)
	}
	c := p.Counts()
	if c.ManifestGETs > 300 || c.Pulls > 300 || c.ManifestHEADs != 900 || c.CDNGETs != 300 {
		t.Errorf("cold scan: %d manifest GETs (%d pulls), %d HEADs, %d config blobs; want ≤ 300, 900 HEADs, 300 blobs", c.ManifestGETs, c.Pulls, c.ManifestHEADs, c.CDNGETs)
	}
	mu.Lock()
	last := seen[len(seen)-1]
	if len(seen) < 10 || last != (scan.Progress{Described: 900, Total: 900, Digests: 900}) || seen[0].Described != 0 {
		t.Errorf("progress: %d reports, first %v, last %v", len(seen), seen[0], last)
	}
	mu.Unlock()
	if s := last.String(); s != "described 900 of 900 tags" {
		t.Errorf("Progress.String() = %q", s)
	}

	// A second scanner over the same cache (a restart) makes no manifest request at all.
	p.ResetCounts()
	res, err = scan.New(scan.Options{Cache: cache}).Scan(ctxT(t), repo, scan.Need{Match: pol.Match, BuildTime: true})
	if err != nil || len(res.Images) != 900 {
		t.Fatalf("warm scan: %v (%d images)", err, len(res.Images))
	}
	if c := p.Counts(); c.ManifestGETs+c.ManifestHEADs+c.CDNGETs != 0 {
		t.Errorf("warm scan: %+v; want no manifest or blob request", c)
	}
}

// TestScanCutByItsDeadlineContinues: a scan cut by its deadline keeps what it found (the
// digests of the first pass, the images described in the second); the next one, by a new
// scanner over the same cache (a restart), goes on from there: no tag is HEADed and no
// image fetched twice, beyond the requests in flight when the first was cut.
func TestScanCutByItsDeadlineContinues(t *testing.T) {
	p := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileGHCR})
	pushBig(t, p, "team/big", 100, 3)
	dir := t.TempDir()
	cache, err := scan.OpenCache(dir, scan.CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	repo := repoOf(t, p.Host, "team/big")
	need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
	// 200 requests a second: the 500 requests this scan makes to the registry take 2.5 s;
	// it has 1.5.
	cut := scan.New(scan.Options{Cache: cache, Limit: scan.Limit{RPS: 200, Burst: 10}, ScanTimeout: 1500 * time.Millisecond})
	_, err = cut.Scan(ctxT(t), repo, need)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first scan: %v, want its deadline", err)
	}
	first := p.Counts()
	if first.ManifestHEADs == 0 {
		t.Fatalf("first scan made no HEAD; the test needs a scan cut part-way")
	}
	if err := cache.Close(); err != nil {
		t.Fatal(err)
	}
	cache, err = scan.OpenCache(dir, scan.CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	p.ResetCounts()
	res, err := scan.New(scan.Options{Cache: cache, Limit: scan.Limit{RPS: 2000, Burst: 200}}).Scan(ctxT(t), repo, need)
	if err != nil || len(res.Images) != 300 {
		t.Fatalf("second scan: %v", err)
	}
	second := p.Counts()
	inFlight := scan.DefaultConcurrency
	if n := first.ManifestHEADs + second.ManifestHEADs; n > 300+inFlight {
		t.Errorf("HEADs: %d cut + %d after; want at most 300 tags + %d in flight", first.ManifestHEADs, second.ManifestHEADs, inFlight)
	}
	if n := first.Pulls + second.Pulls; n > 100+inFlight {
		t.Errorf("pulls: %d cut + %d after; want at most 100 images + %d in flight", first.Pulls, second.Pulls, inFlight)
	}
	if img := res.Images["img-099-t2"]; !img.Created.Equal(base.Add(99 * time.Hour)) {
		t.Errorf("img-099-t2 = %+v", img)
	}
}

// TestPullBudget: the scanner stops pulling while Docker Hub's announced budget is down to
// the reserve (no 429 is ever earned), says until when, lets another registry scan
// meanwhile, and finishes when the window gives pulls back.
func TestPullBudget(t *testing.T) {
	hub := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileDockerHub, PullBudget: 10, Window: 3 * time.Second})
	other := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileGHCR})
	pushBig(t, hub, "library/app", 16, 1)
	pushBig(t, other, "team/app", 16, 1)
	// MaxRetryAfter below the pause (3 s / 10 pulls = 300 ms): the scan ends with the pause.
	sc := scan.New(scan.Options{MaxRetryAfter: 50 * time.Millisecond})
	need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
	repo := repoOf(t, hub.Host, "library/app")
	_, err := sc.Scan(ctxT(t), repo, need)
	var be *scan.BudgetError
	if !errors.As(err, &be) || !errors.Is(err, scan.ErrRateLimited) || !strings.Contains(err.Error(), "paused by the "+hub.Host+" pull budget until ") {
		t.Fatalf("scan past the budget: %v; want a *BudgetError", err)
	}
	if c := hub.Counts(); c.Pulls != 8 || c.RateLimited != 0 {
		t.Errorf("before the pause: %d pulls, %d 429s; want 8 (10 less the 20%% reserve) and none", c.Pulls, c.RateLimited)
	}
	if d, ok := scan.RetryAfter(err); !ok || d <= 0 || d > 3*time.Second {
		t.Errorf("RetryAfter = %v, %v", d, ok)
	}
	if res, err := sc.Scan(ctxT(t), repoOf(t, other.Host, "team/app"), need); err != nil || len(res.Images) != 16 {
		t.Errorf("another registry during the pause: %v", err)
	}
	// Come back when told, as the scheduler does, until done: bounded in rounds and time.
	deadline := time.Now().Add(30 * time.Second)
	var res *scan.Result
	for round := 0; round < 40 && time.Now().Before(deadline); round++ {
		d, _ := scan.RetryAfter(err)
		time.Sleep(d)
		if res, err = sc.Scan(ctxT(t), repo, need); err == nil {
			break
		}
		if !errors.As(err, &be) {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if err != nil || len(res.Images) != 16 {
		t.Fatalf("the scan never finished: %v", err)
	}
	if c := hub.Counts(); c.Pulls != 16 || c.RateLimited != 0 {
		t.Errorf("in all: %d pulls, %d 429s; want 16 (one per image) and none", c.Pulls, c.RateLimited)
	}
}

// TestPullBudgetSpentByOthers: when someone else spent the budget (the kubelet pulls from
// the same address), the free HEADs of the first pass already say so: the scan makes no
// pull, earns no 429, and says until when it waits.
func TestPullBudgetSpentByOthers(t *testing.T) {
	hub := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileDockerHub, PullBudget: 2, Window: time.Minute})
	pushBig(t, hub, "library/app", 3, 1)
	for _, tag := range []string{"img-000-t0", "img-001-t0"} { // the cluster's pulls
		ref, _ := name.ParseReference(hub.Host+"/library/app:"+tag, name.Insecure)
		if _, err := remote.Get(ref, remote.WithContext(ctxT(t))); err != nil {
			t.Fatal(err)
		}
	}
	hub.ResetCounts()
	sc := scan.New(scan.Options{})
	need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
	_, err := sc.Scan(ctxT(t), repoOf(t, hub.Host, "library/app"), need)
	if !errors.Is(err, scan.ErrPullBudget) || !strings.Contains(err.Error(), "(0 of 2 pulls left per 1m0s)") {
		t.Fatalf("scan of a spent budget: %v; want the pause", err)
	}
	if d, ok := scan.RetryAfter(err); !ok || d < 20*time.Second {
		t.Errorf("RetryAfter = %v, %v; want the window's share of a pull (30s)", d, ok)
	}
	if c := hub.Counts(); c.ManifestGETs != 0 || c.RateLimited != 0 || c.ManifestHEADs != 3 {
		t.Errorf("%d manifest GETs, %d 429s, %d HEADs; want 0, 0 and 3", c.ManifestGETs, c.RateLimited, c.ManifestHEADs)
	}
}

// TestSchedulerShowsProgress: the scheduler's status says how far a running scan of a big
// repository has got, keeps how far a scan cut by its deadline got, and clears it once a
// scan succeeds.
func TestSchedulerShowsProgress(t *testing.T) {
	p := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileGHCR})
	pushBig(t, p, "team/big", 100, 3)
	repo := repoOf(t, p.Host, "team/big")
	// 100 requests a second: the 500 registry requests take 5 s; the first scan has 2.
	sc := scan.New(scan.Options{Limit: scan.Limit{RPS: 100, Burst: 10}, ScanTimeout: 2 * time.Second})
	done := make(chan scan.Update, 4)
	sched := scan.NewScheduler(sc, scan.SchedulerOptions{Interval: time.Hour, OnUpdate: func(u scan.Update) { done <- u }})
	sched.Watch("ns/big/c", scan.Watch{Repo: repo, Need: scan.Need{Match: func(string) bool { return true }, BuildTime: true}})
	sched.Start(ctxT(t))
	defer sched.Stop()
	status := func() scan.Status {
		for _, st := range sched.Status() {
			if st.Repo.Name() == repo.Name() {
				return st
			}
		}
		t.Fatal("no status for the watched repository")
		return scan.Status{}
	}
	var running scan.Status
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if running = status(); running.Scanning && running.Progress.Digests > 0 {
			break
		}
	}
	if !running.Scanning || running.Progress.Total != 300 || running.Progress.Digests == 0 || running.Progress.Described == 300 {
		t.Fatalf("status while scanning: %+v", running)
	}
	u := <-done
	if !errors.Is(u.Err, context.DeadlineExceeded) {
		t.Fatalf("first scan: %v; want it cut by its deadline", u.Err)
	}
	if cut := status(); cut.Scanning || cut.Progress.Total != 300 || cut.Progress.Digests < running.Progress.Digests {
		t.Errorf("status after the cut: %+v; want how far it got", cut)
	}
	// The next scans go on from there; each gets 2 s more (bounded: 6 tries).
	for try := 0; try < 6 && u.Err != nil; try++ {
		sched.Trigger(repo)
		u = <-done
	}
	if u.Err != nil {
		t.Fatalf("the scans never finished: %v", u.Err)
	}
	if st := status(); st.Scanning || st.Progress != (scan.Progress{}) || st.Tags != 300 {
		t.Errorf("status after success: %+v", st)
	}
}

// TestMixedPoliciesPullOnlyForBuildTimes: a glob: and a semver: policy watching one
// repository share its scan, but only the glob's tags are pulled for their build times.
func TestMixedPoliciesPullOnlyForBuildTimes(t *testing.T) {
	hub := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileDockerHub})
	for i, tag := range []string{"develop-v1", "develop-v2", "1.0.0", "1.1.0", "1.2.0"} {
		if _, err := hub.Push(ctxT(t), "library/app", tag, testenv.ImageSpec{Created: base.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	repo := repoOf(t, hub.Host, "library/app")
	glob, _ := policy.Parse("glob:develop-v*")
	semver, _ := policy.Parse("semver:~1")
	done := make(chan scan.Update, 1)
	sched := scan.NewScheduler(scan.New(scan.Options{}), scan.SchedulerOptions{Interval: time.Hour, OnUpdate: func(u scan.Update) { done <- u }})
	sched.Watch("ns/web/c", scan.Watch{Repo: repo, Need: scan.Need{Match: glob.Match, BuildTime: glob.NeedsBuildTime(), Digest: true}})
	sched.Watch("ns/api/c", scan.Watch{Repo: repo, Need: scan.Need{Match: semver.Match, BuildTime: semver.NeedsBuildTime(), Digest: true}})
	sched.Start(ctxT(t))
	defer sched.Stop()
	u := <-done
	if u.Err != nil {
		t.Fatal(u.Err)
	}
	if c := hub.Counts(); c.Pulls != 2 || c.ManifestHEADs != 5 {
		t.Errorf("%d pulls, %d HEADs; want 2 (the glob's images) and 5", c.Pulls, c.ManifestHEADs)
	}
	if img := u.Result.Images["1.2.0"]; img.Digest == "" || !img.Created.IsZero() {
		t.Errorf("semver tag 1.2.0 = %+v; want its digest, no build time", img)
	}
	if img := u.Result.Images["develop-v2"]; !img.Created.Equal(base.Add(time.Hour)) {
		t.Errorf("develop-v2 = %+v; want its build time", img)
	}
}

// TestQuayPageSize: quay.io's tags are listed 100 a page (its most) unless the host's
// settings say otherwise: 250 tags in 3 requests, not the 5 of Quay's default page. The
// Quay-like registry is reached under the name quay.io through a loopback dialer.
func TestQuayPageSize(t *testing.T) {
	p := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileQuay})
	d, err := p.Push(ctxT(t), "org/app", "t000", testenv.ImageSpec{Created: base})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 250; i++ {
		if err := p.Tag(ctxT(t), "org/app", d, fmt.Sprintf("t%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := name.NewRepository("quay.io/org/app")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pageSize, pages int
	}{{0, 3}, {50, 5}} {
		p.ResetCounts()
		sc := scan.New(scan.Options{Transport: dialing(p.Host), Hosts: map[string]scan.HostOptions{"quay.io": {Insecure: true, PageSize: tc.pageSize}}})
		res, err := sc.Scan(ctxT(t), repo, scan.Need{})
		if err != nil || len(res.Tags) != 250 {
			t.Fatalf("pageSize %d: %v", tc.pageSize, err)
		}
		if c := p.Counts(); c.TagListGETs != tc.pages {
			t.Errorf("pageSize %d: %d listing requests, want %d", tc.pageSize, c.TagListGETs, tc.pages)
		}
	}
}

// TestPullBudgetMetrics: the pull and budget metrics move on their events: pulls counted as
// the registry counts them, what the registry said remains, the pauses, the tags described,
// and nothing left pending once scans end.
func TestPullBudgetMetrics(t *testing.T) {
	hub := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileDockerHub, PullBudget: 5, Window: time.Minute})
	pushBig(t, hub, "library/app", 6, 2)
	reg := prometheus.NewRegistry()
	m, err := scan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	sc := scan.New(scan.Options{Metrics: m})
	_, err = sc.Scan(ctxT(t), repoOf(t, hub.Host, "library/app"), scan.Need{Match: func(string) bool { return true }, BuildTime: true})
	if !errors.Is(err, scan.ErrPullBudget) {
		t.Fatalf("scan: %v; want the budget's pause", err)
	}
	h := map[string]string{"registry": hub.Host}
	c := hub.Counts()
	for _, tc := range []struct {
		name string
		want float64
	}{
		{"imagebot_scan_pulls_total", float64(c.Pulls)},
		{"imagebot_scan_pull_budget_limit", 5},
		{"imagebot_scan_pull_budget_remaining", 1}, // 5 less 4 pulls: the reserve of one
		{"imagebot_scan_tags_described_total", 8},  // the 4 images pulled, 2 tags each
		{"imagebot_scan_tags_pending", 0},
	} {
		if got := value(t, reg, tc.name, h); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
		}
	}
	if c.Pulls != 4 {
		t.Errorf("the registry counted %d pulls, want 4", c.Pulls)
	}
	if got := value(t, reg, "imagebot_scan_pull_budget_pauses_total", h); got < 1 {
		t.Errorf("pull_budget_pauses_total = %v, want at least 1", got)
	}
	if got := value(t, reg, "imagebot_scan_failures_total", map[string]string{"registry": hub.Host, "reason": "pull_budget"}); got != 1 {
		t.Errorf("failures_total{reason=pull_budget} = %v, want 1", got)
	}
}

// TestUnusableImagePulledOnce: an image whose content decides that it cannot be described (an
// index without the configured platform's image) is pulled once, ever: the reason is cached
// with the digest, and later scans, after a restart too, report it without a pull.
func TestUnusableImagePulledOnce(t *testing.T) {
	hub := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileDockerHub})
	if _, err := hub.Push(ctxT(t), "library/app", "arm-only", testenv.ImageSpec{Created: base,
		Platforms: []v1.Platform{{OS: "linux", Architecture: "arm64"}, {OS: "linux", Architecture: "arm", Variant: "v7"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Push(ctxT(t), "library/app", "good", testenv.ImageSpec{Created: base}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
	repo := repoOf(t, hub.Host, "library/app")
	for i, want := range []int{2, 0, 0} { // pulls: the index and the good image, then none
		cache, err := scan.OpenCache(dir, scan.CacheOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hub.ResetCounts()
		res, err := scan.New(scan.Options{Cache: cache, DigestRecheck: -1}).Scan(ctxT(t), repo, need)
		cache.Close()
		if err != nil {
			t.Fatalf("scan %d: %v", i, err)
		}
		tagErr := res.TagErrors["arm-only"]
		if !errors.Is(tagErr, scan.ErrNotFound) || !strings.Contains(tagErr.Error(), "index has no linux/amd64 image") {
			t.Errorf("scan %d: arm-only: %v; want the index's missing platform", i, tagErr)
		}
		if res.Images["good"].Created.IsZero() {
			t.Errorf("scan %d: good = %+v", i, res.Images["good"])
		}
		if c := hub.Counts(); c.Pulls != want {
			t.Errorf("scan %d: %d pulls, want %d", i, c.Pulls, want)
		}
	}
}
