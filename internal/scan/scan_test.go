package scan_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	bolt "go.etcd.io/bbolt"

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
	// The index's arm64 image (listed first) is older than its amd64 one: only the amd64
	// config gives develop-v1.1.0 the build time that makes it the newest.
	d2 := push(t, host, authn.Anonymous, "team/app", "develop-v1.1.0", testenv.ImageSpec{Created: base.Add(time.Hour), Platforms: multiArch,
		PlatformCreated: map[string]time.Time{"linux/arm64": base.Add(-time.Hour)}})
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
	// ping (https, then http), list, 2×(HEAD, manifest by digest, config), +1 platform
	// manifest for the index; pulls: the 2 manifests and the platform's.
	if res.Requests > 10 || res.MetaMiss != 2 || res.Pulls != 3 {
		t.Errorf("cold scan: %d requests, %d pulls, %d metadata misses; want ≤ 10, 3 and 2", res.Requests, res.Pulls, res.MetaMiss)
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

// TestIndexBuildTime: a multi-arch index pins its own digest, and its build time is the
// created time of Options.Platform's image (linux/amd64 by default), each platform's
// different here; a persistent cache keeps them per platform, so a restart with another
// platform does not serve the old one's.
func TestIndexBuildTime(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	created := map[string]time.Time{
		"linux/arm64":  base.Add(1 * time.Hour),
		"linux/amd64":  base.Add(2 * time.Hour),
		"linux/arm/v7": base.Add(3 * time.Hour),
	}
	platforms := []v1.Platform{{OS: "linux", Architecture: "arm64"}, {OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm", Variant: "v7"}}
	idx := push(t, host, authn.Anonymous, "app", "v1", testenv.ImageSpec{Created: base, Platforms: platforms, PlatformCreated: created})
	single := push(t, host, authn.Anonymous, "app", "v2", testenv.ImageSpec{Created: base.Add(4 * time.Hour),
		Platforms: []v1.Platform{{OS: "linux", Architecture: "arm64"}}})
	repo := repoOf(t, host, "app")
	need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
	for _, tc := range []struct {
		platform v1.Platform
		want     time.Time // v1's build time; zero: v1 has no such image
	}{
		{v1.Platform{}, created["linux/amd64"]},
		{v1.Platform{OS: "linux", Architecture: "amd64"}, created["linux/amd64"]},
		{v1.Platform{OS: "linux", Architecture: "arm64"}, created["linux/arm64"]},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, created["linux/arm/v7"]},
		{v1.Platform{OS: "windows", Architecture: "amd64"}, time.Time{}},
	} {
		t.Run(tc.platform.String(), func(t *testing.T) {
			res, err := scan.New(scan.Options{Platform: tc.platform}).Scan(ctxT(t), repo, need)
			if err != nil {
				t.Fatal(err)
			}
			// A single-platform image is its own build time whatever the platform.
			if img := res.Images["v2"]; img.Digest != single.String() || !img.Created.Equal(base.Add(4*time.Hour)) {
				t.Errorf("v2 = %+v, want %s built %s", img, single, base.Add(4*time.Hour))
			}
			img, ok := res.Images["v1"]
			if tc.want.IsZero() {
				if ok || !errors.Is(res.TagErrors["v1"], scan.ErrNotFound) {
					t.Errorf("an index without the platform: image %+v, tag error %v; want no image and ErrNotFound", img, res.TagErrors["v1"])
				}
				return
			}
			if img.Digest != idx.String() || !img.Created.Equal(tc.want) {
				t.Errorf("v1 = %+v, want the index %s built %s", img, idx, tc.want)
			}
			if img.MediaType != string(types.OCIImageIndex) {
				t.Errorf("v1 media type %q, want the index's %q", img.MediaType, types.OCIImageIndex)
			}
		})
	}

	// The persistent cache across restarts that change the platform.
	dir := t.TempDir()
	for i, tc := range []struct {
		platform v1.Platform
		want     time.Time
		misses   int
	}{
		{v1.Platform{}, created["linux/amd64"], 2},                                   // cold
		{v1.Platform{OS: "linux", Architecture: "arm64"}, created["linux/arm64"], 1}, // the index again, for arm64
		{v1.Platform{OS: "linux", Architecture: "arm64"}, created["linux/arm64"], 0},
		{v1.Platform{OS: "linux", Architecture: "amd64"}, created["linux/amd64"], 0},
	} {
		cache, err := scan.OpenCache(dir, scan.CacheOptions{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := scan.New(scan.Options{Cache: cache, Platform: tc.platform}).Scan(ctxT(t), repo, need)
		if err != nil {
			t.Fatal(err)
		}
		if img := res.Images["v1"]; img.Digest != idx.String() || !img.Created.Equal(tc.want) {
			t.Errorf("restart %d (%s): v1 = %+v, want the index %s built %s", i, tc.platform, img, idx, tc.want)
		}
		if !res.Images["v2"].Created.Equal(base.Add(4 * time.Hour)) {
			t.Errorf("restart %d (%s): v2 = %+v", i, tc.platform, res.Images["v2"])
		}
		if res.MetaMiss != tc.misses {
			t.Errorf("restart %d (%s): %d metadata misses, want %d", i, tc.platform, res.MetaMiss, tc.misses)
		}
		if err := cache.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// A store written before indexes were cached per platform holds the index's build time
	// under its bare digest, for whichever platform was configured then: not used.
	db, err := bolt.Open(filepath.Join(dir, "scan.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		v := meta.Get([]byte(idx.String() + "@linux/amd64"))
		if v == nil {
			return fmt.Errorf("no metadata under %s@linux/amd64", idx)
		}
		if err := meta.Put([]byte(idx.String()), v); err != nil {
			return err
		}
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			if err := meta.Delete([]byte(idx.String() + "@" + p)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	cache, err := scan.OpenCache(dir, scan.CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	res, err := scan.New(scan.Options{Cache: cache, Platform: v1.Platform{OS: "linux", Architecture: "arm64"}}).Scan(ctxT(t), repo, need)
	if err != nil {
		t.Fatal(err)
	}
	if img := res.Images["v1"]; !img.Created.Equal(created["linux/arm64"]) || res.MetaMiss != 1 {
		t.Errorf("over an older store: v1 = %+v with %d misses, want built %s and 1 miss", img, res.MetaMiss, created["linux/arm64"])
	}
}
