package daemon_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"

	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/testenv"
)

// The profile test's manifests: a Flux v1 workload following develop-v* builds by build
// time, and a native-spelling one following a semver range, with the comments, blank lines
// and quoting that must survive the edit. REG is the profile registry's host.
const (
	profileGlobFile   = "apps/web.yaml"
	profileSemverFile = "apps/api.yaml"
	profileGlob       = `# The shop's front end: CI pushes develop-v* builds.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations:
    flux.weave.works/automated: 'true'
    flux.weave.works/tag.web: glob:develop-v*
spec:
  replicas: 2

  template:
    spec:
      containers:
      - name: web
        image: REG/team/web:develop-v1.0.0 # newest build wins
        ports: [{containerPort: 8080}]
`
	profileSemver = `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
  annotations:
    imagebot.dev/automated: "true"
    imagebot.dev/tag.api: semver:~1
spec:
  template:
    spec:
      containers:
      - name: api
        image: "REG/team/api:1.2.0"
        args:
        - --port=9090   # keep
`
	profileReadme = "Nothing here is automated.\n"
)

// TestRegistryProfilesEndToEnd runs the daemon against each production-like registry
// (testenv profiles: Docker Hub with a private repository and its token realm on another
// host, GHCR, Quay with capped tag pages, ECR with basic auth), credentials coming from the
// repository config's spec.registries[].dockerConfigFile. For each: the glob policy picks
// the build made last (develop-v1.0.1, not the highest version), the semver range its
// highest (1.10.0, not 1.9.9), and the daemon commits exactly those two edits; the CDN never
// sees an Authorization header; the glob policy costs at most one pull per image it ranks
// (three), the semver one none; and a scan cycle after the commit pulls nothing. One git
// server serves every subtest; each runs its own registry and daemon.
func TestRegistryProfilesEndToEnd(t *testing.T) {
	env := testenv.New(t, testenv.Options{GitServer: true})
	for _, c := range []struct {
		profile testenv.Profile
		private bool // the repositories refuse anonymous pulls
		creds   bool // the config gives the registry's credentials
	}{
		{testenv.ProfileDockerHub, true, true},
		{testenv.ProfileGHCR, false, false},
		{testenv.ProfileQuay, false, false},
		{testenv.ProfileECR, false, true}, // ECR always wants its basic auth
	} {
		t.Run(string(c.profile), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			testProfileEndToEnd(t, env.Git, c.profile, c.private, c.creds)
			t.Logf("%s: %v", c.profile, time.Since(start).Round(time.Millisecond))
		})
	}
}

func testProfileEndToEnd(t *testing.T, g *testenv.GitServer, profile testenv.Profile, private, creds bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := testenv.ProfileOptions{Profile: profile}
	if private {
		opts.Private = []string{"team/web", "team/api"}
	}
	p, err := testenv.StartProfileRegistry(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)

	// develop-v1.0.1 was built last: build-time order picks it, not the highest version.
	// 1.9.9 was built last too, but semver ranks versions: 1.10.0.
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, img := range []struct {
		repo, tag string
		built     time.Duration
	}{
		{"team/web", "develop-v1.0.0", 0}, {"team/web", "develop-v1.1.0", time.Hour}, {"team/web", "develop-v1.0.1", 2 * time.Hour},
		{"team/api", "1.2.0", 0}, {"team/api", "1.10.0", time.Hour}, {"team/api", "1.9.9", 2 * time.Hour},
	} {
		if _, err := p.Push(ctx, img.repo, img.tag, testenv.ImageSpec{Created: t0.Add(img.built)}); err != nil {
			t.Fatal(err)
		}
	}
	// 120 tags the glob does not match, on one image: Quay's tag list takes three pages.
	filler, err := p.Push(ctx, "team/web", "build-000", testenv.ImageSpec{Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 120; i++ {
		if err := p.Tag(ctx, "team/web", filler, fmt.Sprintf("build-%03d", i)); err != nil {
			t.Fatal(err)
		}
	}

	reg := func(s string) string { return strings.ReplaceAll(s, "REG", p.Host) }
	name := "profile-" + string(profile)
	repoPath := g.RepoPath(name)
	url, err := g.CreateRepo(name, "main", map[string]string{
		profileGlobFile: reg(profileGlob), profileSemverFile: reg(profileSemver), "README.md": profileReadme})
	if err != nil {
		t.Fatal(err)
	}
	initial, err := testenv.Head(repoPath, "main")
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	registries := "  registries:\n  - host: " + p.Host + "\n"
	if creds {
		auth := base64.StdEncoding.EncodeToString([]byte(p.Username + ":" + p.Password()))
		b, _ := json.Marshal(map[string]any{"auths": map[string]any{p.Host: map[string]string{"auth": auth}}})
		file := filepath.Join(dir, "docker-config.json")
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		registries += "    dockerConfigFile: " + file + "\n"
	}
	// The git poll is an hour: only scans wake the bot. Scans come every second (±10 %).
	cfgFile := writeConfig(t, dir, url, g, "1h", "1s", registries)
	w := &world{daemon: runDaemon(t, daemon.Options{ConfigPaths: []string{cfgFile}, DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0"}), repoPath: repoPath, cfgFile: cfgFile}

	// The commit: both files edited, nothing else.
	wantGlob := strings.Replace(reg(profileGlob), "/team/web:develop-v1.0.0 ", "/team/web:develop-v1.0.1 ", 1)
	wantSemver := strings.Replace(reg(profileSemver), "/team/api:1.2.0\"", "/team/api:1.10.0\"", 1)
	if wantGlob == reg(profileGlob) || wantSemver == reg(profileSemver) {
		t.Fatal("the expected files equal the seeds")
	}
	deadline := time.Now().Add(30 * time.Second)
	var gotGlob, gotSemver string
	for {
		gotGlob, _ = testenv.ReadFile(repoPath, "main", profileGlobFile)
		gotSemver, _ = testenv.ReadFile(repoPath, "main", profileSemverFile)
		if gotGlob != reg(profileGlob) && gotSemver != reg(profileSemver) {
			break
		}
		if time.Now().After(deadline) {
			st, _ := json.MarshalIndent(w.status(t), "", "  ")
			t.Fatalf("no commit of both files within 30s; %+v\nstatus:\n%s", p.Counts(), st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if gotGlob != wantGlob {
		t.Errorf("%s:\n%s\nwant:\n%s", profileGlobFile, gotGlob, wantGlob)
	}
	if gotSemver != wantSemver {
		t.Errorf("%s:\n%s\nwant:\n%s", profileSemverFile, gotSemver, wantSemver)
	}
	head, err := testenv.Head(repoPath, "main")
	if err != nil {
		t.Fatal(err)
	}
	if readme, err := testenv.ReadFile(repoPath, "main", "README.md"); err != nil || readme != profileReadme {
		t.Errorf("README.md: %q, %v", readme, err)
	}
	changed := changedFiles(t, initial, head)
	if len(changed) != 2 || changed[0] != profileSemverFile || changed[1] != profileGlobFile {
		t.Errorf("the bot's commits change %v; want %s and %s only", changed, profileSemverFile, profileGlobFile)
	}

	// The bot has finished the cycle that pushed; the scanner knows both repositories.
	webRepo, apiRepo := p.Host+"/team/web", p.Host+"/team/api"
	images := func(st daemon.Status) map[string]daemon.ImageStatus {
		m := map[string]daemon.ImageStatus{}
		for _, is := range st.Images {
			m[is.Repository] = is
		}
		return m
	}
	st := w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool {
		return len(st.Repositories) == 1 && st.Repositories[0].Revision == head.Hash.String()
	})
	if r := st.Repositories[0]; r.Error != "" || len(r.Problems) != 0 {
		t.Errorf("repository status: error %q, problems %q", r.Error, r.Problems)
	}
	for _, ts := range st.Repositories[0].Targets {
		if want := map[string]string{"web": webRepo + ":develop-v1.0.1", "api": apiRepo + ":1.10.0"}[ts.Container]; ts.Image != want {
			t.Errorf("target %s runs %s, want %s", ts.Container, ts.Image, want)
		}
	}
	im := images(st)
	if len(st.Images) != 2 || im[webRepo].Tags != 123 || im[apiRepo].Tags != 3 {
		t.Errorf("scanned images: %+v; want %s with 123 tags (every page) and %s with 3", st.Images, webRepo, apiRepo)
	}

	// What it cost the registry, cold.
	c := p.Counts()
	if c.CDNWithAuthorization != 0 || c.CDNRefused != 0 {
		t.Errorf("the CDN saw %d requests with an Authorization header and refused %d", c.CDNWithAuthorization, c.CDNRefused)
	}
	// Each of the three develop-v* images' config blob, through the redirect, once.
	if c.BlobGETs != 3 || c.CDNGETs != 3 {
		t.Errorf("%d blob GETs and %d CDN GETs; want 3 and 3 (one config per develop-v* image)", c.BlobGETs, c.CDNGETs)
	}
	if c.Pulls > 3 || c.ManifestGETs != c.Pulls || c.RateLimited != 0 {
		t.Errorf("%d pulls (%d manifest GETs), %d 429s; want at most 3 (one per develop-v* image; semver needs none), every GET a pull, no 429",
			c.Pulls, c.ManifestGETs, c.RateLimited)
	}
	if private && c.TokenRequests == 0 {
		t.Errorf("no token request to %s's realm: %+v", profile, c)
	}
	t.Logf("%s cold: %+v", profile, c)

	// Warm: two more scans of both repositories (the second begun after this point) pull
	// nothing, list the tags again (the positive control), and commit nothing.
	mark := time.Now()
	var prev map[string]time.Time
	for round := range 2 {
		st := w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool {
			im := images(st)
			for _, r := range []string{webRepo, apiRepo} {
				after := mark
				if round > 0 {
					after = prev[r]
				}
				if !im[r].LastOK.After(after) || im[r].LastError != "" {
					return false
				}
			}
			return true
		})
		im := images(st)
		prev = map[string]time.Time{webRepo: im[webRepo].LastOK, apiRepo: im[apiRepo].LastOK}
	}
	warm := p.Counts()
	if warm.Pulls != c.Pulls || warm.ManifestGETs != c.ManifestGETs || warm.BlobGETs != c.BlobGETs || warm.CDNGETs != c.CDNGETs {
		t.Errorf("scans after the commit: %d pulls, %d manifest GETs, %d blob GETs, %d CDN GETs; want none (before: %+v, after: %+v)",
			warm.Pulls-c.Pulls, warm.ManifestGETs-c.ManifestGETs, warm.BlobGETs-c.BlobGETs, warm.CDNGETs-c.CDNGETs, c, warm)
	}
	if warm.TagListGETs <= c.TagListGETs {
		t.Errorf("no tag listing in two scan cycles (%d before, %d after): the scans did not reach the registry", c.TagListGETs, warm.TagListGETs)
	}
	if warm.CDNWithAuthorization != 0 || warm.CDNRefused != 0 || warm.RateLimited != 0 {
		t.Errorf("after the warm scans: %+v", warm)
	}
	if h, err := testenv.Head(repoPath, "main"); err != nil || h.Hash != head.Hash {
		t.Errorf("a commit after the update: %v, %v", h, err)
	}
}

// changedFiles lists the files that differ between two commits, sorted.
func changedFiles(t *testing.T, from, to *object.Commit) []string {
	t.Helper()
	a, err := from.Tree()
	if err != nil {
		t.Fatal(err)
	}
	b, err := to.Tree()
	if err != nil {
		t.Fatal(err)
	}
	changes, err := a.Diff(b)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ch := range changes {
		name := ch.To.Name
		if name == "" {
			name = ch.From.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
