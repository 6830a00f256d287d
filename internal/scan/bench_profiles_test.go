package scan_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

// profileBenchTags are the repository sizes of BenchmarkProfileScan.
var profileBenchTags = []int{1, 100, 1000}

// pushReleases fills repo with n tags the way a CI release pipeline tags its images: each
// distinct image under three tags, "1.M.P", "v1.M.P" and "sha-<7 hex>" (what
// docker/metadata-action writes), built an hour apart; the last image gets what is left
// when n is not a multiple of 3 (n = 1: one image, one tag). It returns the number of
// distinct images.
func pushReleases(ctx context.Context, b *testing.B, p *testenv.ProfileRegistry, repo string, n int) int {
	b.Helper()
	images := 0
	for tags := 0; tags < n; images++ {
		ver := fmt.Sprintf("1.%d.%d", images/10, images%10)
		d, err := p.Push(ctx, repo, ver, testenv.ImageSpec{Created: base.Add(time.Duration(images) * time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		tags++
		for _, t := range []string{"v" + ver, "sha-" + d.Hex[:7]} {
			if tags == n {
				break
			}
			if err := p.Tag(ctx, repo, d, t); err != nil {
				b.Fatal(err)
			}
			tags++
		}
	}
	return images
}

// profileScanner is the scanner of BenchmarkProfileScan: anonymous on the public
// registries (what a Flux v1 user scanning public images does), with the registry's
// credentials on ECR (which has no anonymous access).
func profileScanner(p *testenv.ProfileRegistry, limit scan.Limit, cache *scan.Cache) *scan.Scanner {
	opts := scan.Options{Limit: limit, Cache: cache}
	if p.Profile == testenv.ProfileECR {
		opts.Keychain = profileKeychain{p}
	}
	return scan.New(opts)
}

// profileCounted runs scans and reports, per scan, what the scanner says it did and what
// the registry saw.
type profileCounted struct {
	b      *testing.B
	p      *testenv.ProfileRegistry
	sum    testenv.ProfileCounts
	reqs   int           // Result.Requests
	pulls  int           // Result.Pulls
	waited time.Duration // Result.Waited: rate limits and pull budgets
	scans  int
}

// scan runs one scan (timed or not, as the caller set the timer), checks it and adds its
// counts.
func (pc *profileCounted) scan(ctx context.Context, sc *scan.Scanner, repo name.Repository, tags int) {
	pc.p.ResetCounts()
	res, err := sc.Scan(ctx, repo, scan.Need{Match: func(string) bool { return true }, BuildTime: true})
	c := pc.p.Counts()
	if err != nil {
		pc.b.Fatalf("scan %s: %v", repo, err)
	}
	if len(res.Tags) != tags || len(res.Images) != tags {
		pc.b.Fatalf("scan %s: %d tags listed, %d described; want %d", repo, len(res.Tags), len(res.Images), tags)
	}
	if res.Pulls != c.Pulls {
		pc.b.Errorf("scan %s: the scanner counted %d pulls, the registry %d", repo, res.Pulls, c.Pulls)
	}
	if c.RateLimited != 0 || c.CDNWithAuthorization != 0 || c.CDNRefused != 0 {
		pc.b.Errorf("scan %s: %d 429s, %d CDN requests with Authorization, %d refused", repo, c.RateLimited, c.CDNWithAuthorization, c.CDNRefused)
	}
	pc.sum.Requests += c.Requests
	pc.sum.Pulls += c.Pulls
	pc.sum.ManifestGETs += c.ManifestGETs
	pc.sum.ManifestHEADs += c.ManifestHEADs
	pc.sum.BlobGETs += c.BlobGETs
	pc.sum.CDNGETs += c.CDNGETs
	pc.sum.TokenRequests += c.TokenRequests
	pc.sum.TagListGETs += c.TagListGETs
	pc.sum.Unauthorized += c.Unauthorized
	pc.reqs += res.Requests
	pc.pulls += res.Pulls
	pc.waited += res.Waited
	pc.scans++
}

func (pc *profileCounted) report() {
	n := float64(pc.scans)
	b := pc.b
	b.ReportMetric(float64(pc.reqs)/n, "requests/op")
	b.ReportMetric(float64(pc.sum.Requests)/n, "registry-reqs/op")
	b.ReportMetric(float64(pc.sum.Pulls)/n, "pulls/op")
	b.ReportMetric(float64(pc.sum.ManifestGETs)/n, "manifestGETs/op")
	b.ReportMetric(float64(pc.sum.ManifestHEADs)/n, "HEADs/op")
	b.ReportMetric(float64(pc.sum.BlobGETs)/n, "blobGETs/op")
	b.ReportMetric(float64(pc.sum.CDNGETs)/n, "cdnGETs/op")
	b.ReportMetric(float64(pc.sum.TokenRequests)/n, "tokenReqs/op")
	b.ReportMetric(float64(pc.sum.TagListGETs)/n, "tagLists/op")
	b.ReportMetric(float64(pc.sum.Unauthorized)/n, "401s/op")
	b.ReportMetric(pc.waited.Seconds()*1000/n, "waited-ms/op")
}

// BenchmarkProfileScan measures what one scan costs on each production-like registry
// profile (testenv: Docker Hub, GHCR, Quay, ECR; blob GETs redirected to a CDN) for Flux
// v1's default policy, glob:* ranked by build time (every tag described, every distinct
// image's config fetched), on repositories of 1, 100 and 1,000 tags, three tags per
// distinct image (see pushReleases).
//
//   - cold: a new scanner with an empty in-memory cache per iteration (a first scan).
//   - warm: the same scanner scanning again, nothing pushed since (a daemon's next scan,
//     within SessionTTL); its first scan is not timed.
//   - restart: a new scanner per iteration over a persistent cache (scan.OpenCache) that
//     an untimed scan filled: a restarted daemon's first scan, and what a warm scan costs
//     once its session is older than SessionTTL (a new /v2/ ping and token).
//
// Besides ns/op it reports, per scan: requests/op (Result.Requests, the scanner's count,
// auth and redirects included), registry-reqs/op (what the registry, its token server and
// CDN saw), pulls/op (manifest GETs answered 200, Docker Hub's count; checked equal to
// Result.Pulls), manifestGETs/op, HEADs/op, blobGETs/op, cdnGETs/op, tokenReqs/op,
// tagLists/op and 401s/op. Counts are deterministic; times are not.
//
// The rate limit is raised to 100,000 requests/s (burst 1,000) so the time measures the
// client and the registry, not the limiter (at 2,000/s, burst 200, a cold 1,000-tag scan's
// ~2,000 requests still take ~0.9 s of the limiter's); BenchmarkProfileScanDefaultRate measures a big cold
// scan at the default 10 requests/s. The pull budget is set far above what the run spends.
//
//	go test -run '^$' -bench BenchmarkProfileScan -benchtime 3x -count 5 ./internal/scan/
func BenchmarkProfileScan(b *testing.B) {
	limit := scan.Limit{RPS: 100000, Burst: 1000}
	for _, prof := range []testenv.Profile{testenv.ProfileDockerHub, testenv.ProfileGHCR, testenv.ProfileQuay, testenv.ProfileECR} {
		b.Run(string(prof), func(b *testing.B) {
			ctx := ctxT(b)
			p, err := testenv.StartProfileRegistry(ctx, testenv.ProfileOptions{Profile: prof, PullBudget: 100000})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.Close)
			images := map[int]int{}
			for _, n := range profileBenchTags {
				images[n] = pushReleases(ctx, b, p, fmt.Sprintf("team/app-%d", n), n)
			}
			for _, n := range profileBenchTags {
				repo := repoOf(b, p.Host, fmt.Sprintf("team/app-%d", n))
				b.Run(fmt.Sprintf("tags=%d/cold", n), func(b *testing.B) {
					ctx := ctxT(b)
					pc := &profileCounted{b: b, p: p}
					for b.Loop() {
						pc.scan(ctx, profileScanner(p, limit, nil), repo, n)
					}
					if pc.pulls != pc.scans*images[n] {
						b.Errorf("cold: %d pulls in %d scans of %d images; want one per image", pc.pulls, pc.scans, images[n])
					}
					pc.report()
				})
				b.Run(fmt.Sprintf("tags=%d/warm", n), func(b *testing.B) {
					ctx := ctxT(b)
					sc := profileScanner(p, limit, nil)
					if _, err := sc.Scan(ctx, repo, scan.Need{Match: func(string) bool { return true }, BuildTime: true}); err != nil {
						b.Fatal(err)
					}
					pc := &profileCounted{b: b, p: p}
					for b.Loop() {
						pc.scan(ctx, sc, repo, n)
					}
					if pc.pulls != 0 {
						b.Errorf("warm: %d pulls in %d scans; want none", pc.pulls, pc.scans)
					}
					pc.report()
				})
				b.Run(fmt.Sprintf("tags=%d/restart", n), func(b *testing.B) {
					ctx := ctxT(b)
					cache, err := scan.OpenCache(b.TempDir(), scan.CacheOptions{})
					if err != nil {
						b.Fatal(err)
					}
					defer cache.Close()
					if _, err := profileScanner(p, limit, cache).Scan(ctx, repo, scan.Need{Match: func(string) bool { return true }, BuildTime: true}); err != nil {
						b.Fatal(err)
					}
					pc := &profileCounted{b: b, p: p}
					for b.Loop() {
						pc.scan(ctx, profileScanner(p, limit, cache), repo, n)
					}
					if pc.pulls != 0 {
						b.Errorf("restart: %d pulls in %d scans; want none", pc.pulls, pc.scans)
					}
					pc.report()
				})
			}
		})
	}
}

// BenchmarkProfileScanDefaultRate is the cold scan of the 1,000-tag repository (334
// distinct images) on the Docker Hub profile at the scanner's DEFAULT settings (10
// requests/s per host, burst 20; anonymous), which takes about 3 minutes (165 s of
// scanning: the registry's bucket paces its 1,670 requests). It is skipped unless
// IMAGEBOT_BENCH_DEFAULT_RATE=1 is set. Run it once:
//
//	IMAGEBOT_BENCH_DEFAULT_RATE=1 go test -run '^$' -bench BenchmarkProfileScanDefaultRate -benchtime 1x -timeout 20m ./internal/scan/
func BenchmarkProfileScanDefaultRate(b *testing.B) {
	if os.Getenv("IMAGEBOT_BENCH_DEFAULT_RATE") != "1" {
		b.Skip("about 3.5 minutes: set IMAGEBOT_BENCH_DEFAULT_RATE=1 to run it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	p, err := testenv.StartProfileRegistry(ctx, testenv.ProfileOptions{Profile: testenv.ProfileDockerHub, PullBudget: 100000})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	const n = 1000
	images := pushReleases(ctx, b, p, "library/app", n)
	repo := repoOf(b, p.Host, "library/app")
	pc := &profileCounted{b: b, p: p}
	for b.Loop() {
		sc := scan.New(scan.Options{}) // the defaults, anonymous
		start := time.Now()
		pc.scan(ctx, sc, repo, n)
		b.Logf("cold scan of %d tags (%d images) at the default rate: %v", n, images, time.Since(start).Round(time.Millisecond))
	}
	if pc.pulls != pc.scans*images {
		b.Errorf("%d pulls in %d scans of %d images; want one per image", pc.pulls, pc.scans, images)
	}
	pc.report()
}
