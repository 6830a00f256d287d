package scan_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"imagebot.dev/imagebot/internal/policy"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

var base = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func repoOf(t testing.TB, host, path string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(host+"/"+path, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func push(t testing.TB, host string, auth authn.Authenticator, repo, tag string, spec testenv.ImageSpec) v1.Hash {
	t.Helper()
	d, err := testenv.PushImage(ctxT(t), host, auth, repo, tag, spec)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// retag points tag at the manifest of from with a manifest PUT only.
func retag(t testing.TB, host string, auth authn.Authenticator, repo, from, tag string) {
	t.Helper()
	ref, _ := name.ParseReference(host+"/"+repo+":"+from, name.Insecure)
	desc, err := remote.Get(ref, remote.WithAuth(auth), remote.WithContext(ctxT(t)))
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
	if err := remote.Put(dst, desc, remote.WithAuth(auth), remote.WithContext(ctxT(t))); err != nil {
		t.Fatal(err)
	}
}

var multiArch = []v1.Platform{{OS: "linux", Architecture: "arm64"}, {OS: "linux", Architecture: "amd64"}}

func TestScanDescribesOnlyWhatThePolicyNeeds(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	d1 := push(t, host, authn.Anonymous, "team/app", "develop-v1.0.0", testenv.ImageSpec{Created: base})
	d2 := push(t, host, authn.Anonymous, "team/app", "develop-v1.1.0", testenv.ImageSpec{Created: base.Add(time.Hour), Platforms: multiArch})
	push(t, host, authn.Anonymous, "team/app", "main-1", testenv.ImageSpec{Created: base.Add(2 * time.Hour)})
	for i := range 5 {
		retag(t, host, authn.Anonymous, "team/app", "main-1", fmt.Sprintf("other-%d", i))
	}
	repo := repoOf(t, host, "team/app")
	pol, err := policy.Parse("glob:develop-v*")
	if err != nil {
		t.Fatal(err)
	}
	sc := scan.New(scan.Options{})
	need := scan.Need{Match: pol.Match, BuildTime: pol.NeedsBuildTime()}
	res, err := sc.Scan(ctxT(t), repo, need)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tags) != 8 {
		t.Errorf("tags = %v, want 8", res.Tags)
	}
	if len(res.Images) != 2 {
		t.Fatalf("described %d tags, want the 2 the policy matches: %v", len(res.Images), res.Images)
	}
	if img := res.Images["develop-v1.0.0"]; img.Digest != d1.String() || !img.Created.Equal(base) {
		t.Errorf("develop-v1.0.0 = %+v, want %s at %s", img, d1, base)
	}
	// The index digest pins; linux/amd64's config gives the build time.
	if img := res.Images["develop-v1.1.0"]; img.Digest != d2.String() || !img.Created.Equal(base.Add(time.Hour)) {
		t.Errorf("develop-v1.1.0 = %+v, want index %s at %s", img, d2, base.Add(time.Hour))
	}
	// ping, list, 2×(manifest, config), +1 platform manifest for the index.
	if res.Requests > 9 || res.MetaMiss != 2 {
		t.Errorf("cold scan: %d requests, %d metadata misses; want ≤ 9 and 2", res.Requests, res.MetaMiss)
	}
	sel, err := pol.Select(res.Candidates(), policy.Candidate{Tag: "develop-v1.0.0"}, time.Now())
	if err != nil || sel.Tag != "develop-v1.1.0" {
		t.Errorf("Select = %+v, %v; want develop-v1.1.0", sel, err)
	}

	// Warm: one listing, nothing else.
	res, err = sc.Scan(ctxT(t), repo, need)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 1 {
		t.Errorf("warm rescan made %d requests, want 1 (the listing)", res.Requests)
	}
	if len(res.Images) != 2 || res.Images["develop-v1.1.0"].Digest != d2.String() {
		t.Errorf("warm rescan images = %v", res.Images)
	}

	// A policy that needs no build time describes nothing.
	sem, _ := policy.Parse("semver:~1")
	res, err = sc.Scan(ctxT(t), repo, scan.Need{Match: sem.Match, BuildTime: sem.NeedsBuildTime()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 0 || res.Requests != 1 {
		t.Errorf("semver scan described %v with %d requests, want nothing and 1", res.Images, res.Requests)
	}
}

func TestTrackedTagIsCheckedEveryScan(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	push(t, host, authn.Anonymous, "app", "latest", testenv.ImageSpec{Created: base})
	repo := repoOf(t, host, "app")
	sc := scan.New(scan.Options{})
	need := scan.Need{Track: []string{"latest"}, BuildTime: true}
	if _, err := sc.Scan(ctxT(t), repo, need); err != nil {
		t.Fatal(err)
	}
	res, err := sc.Scan(ctxT(t), repo, need)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 2 || res.MetaMiss != 0 {
		t.Errorf("unchanged tracked tag: %d requests, %d misses; want 2 (list, HEAD) and 0", res.Requests, res.MetaMiss)
	}
	d2 := push(t, host, authn.Anonymous, "app", "latest", testenv.ImageSpec{Created: base.Add(time.Hour)})
	res, err = sc.Scan(ctxT(t), repo, need)
	if err != nil {
		t.Fatal(err)
	}
	if img := res.Images["latest"]; img.Digest != d2.String() || !img.Created.Equal(base.Add(time.Hour)) {
		t.Errorf("moved latest = %+v, want %s built %s", img, d2, base.Add(time.Hour))
	}
}

func TestRestartWithCacheMakesNoMetadataRequests(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	for i := range 4 {
		push(t, host, authn.Anonymous, "app", fmt.Sprintf("v%d", i), testenv.ImageSpec{Created: base.Add(time.Duration(i) * time.Hour)})
	}
	repo := repoOf(t, host, "app")
	dir := t.TempDir()
	need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
	var want map[string]scan.Image
	for round := range 2 {
		cache, err := scan.OpenCache(dir, scan.CacheOptions{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := scan.New(scan.Options{Cache: cache}).Scan(ctxT(t), repo, need)
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			want = res.Images
			if res.MetaMiss != 4 {
				t.Errorf("cold: %d misses, want 4", res.MetaMiss)
			}
		} else {
			// A new process: the ping (https then http for a plain-HTTP registry) and the
			// listing, nothing else.
			if res.Requests > 3 || res.MetaMiss != 0 {
				t.Errorf("after restart: %d requests, %d misses; want ≤ 3 and 0", res.Requests, res.MetaMiss)
			}
			for tag, img := range want {
				if got := res.Images[tag]; got.Digest != img.Digest || !got.Created.Equal(img.Created) {
					t.Errorf("%s from cache = %+v, want %+v", tag, got, img)
				}
			}
		}
		if err := cache.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTagCap(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	push(t, host, authn.Anonymous, "app", "t0", testenv.ImageSpec{})
	for i := 1; i < 6; i++ {
		retag(t, host, authn.Anonymous, "app", "t0", fmt.Sprintf("t%d", i))
	}
	repo := repoOf(t, host, "app")
	sc := scan.New(scan.Options{TagCap: 5})
	_, err := sc.Scan(ctxT(t), repo, scan.Need{})
	if !errors.Is(err, scan.ErrTagCap) {
		t.Fatalf("6 tags with a cap of 5: err = %v, want ErrTagCap", err)
	}
	if !strings.Contains(err.Error(), "scan "+repo.Name()+": list tags: tag cap reached: more than 5 tags") {
		t.Errorf("error %q does not say what and where", err)
	}
	if res, err := sc.Scan(ctxT(t), repo, scan.Need{TagCap: 6}); err != nil || len(res.Tags) != 6 {
		t.Errorf("per-repository cap 6: %v, %v", res, err)
	}
}

func TestMissingRepository(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	_, err := scan.New(scan.Options{}).Scan(ctxT(t), repoOf(t, host, "nope"), scan.Need{})
	if !errors.Is(err, scan.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}
