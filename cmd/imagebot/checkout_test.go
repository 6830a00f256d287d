package main

import (
	"context"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"

	"imagebot.dev/imagebot/internal/testenv"
)

// deployment is an automated Deployment running image under a semver policy.
func deployment(name, image string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  namespace: my-demo
  annotations:
    imagebot.dev/automated: "true"
    imagebot.dev/tag.app: semver:~1
spec:
  template:
    spec:
      containers:
      - name: app
        image: ` + image + `
`
}

// writeFiles writes files (relative path → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		f := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// diffLine is how plan's diff shows a changed line (a Deployment's or a marked tag's).
func changed(out, from, to string) bool {
	return strings.Contains(out, "-"+from+"\n") && strings.Contains(out, "+"+to+"\n")
}

// TestPlanWithConfig: with --config, plan decides as the daemon would with that
// repository's config: spec.images.include leaves out the images of another registry (and
// says so), spec.git.paths leaves out the workloads elsewhere, spec.markers resolves a Flux
// v2 $imagepolicy marker; without --config it plans everything it finds. Two real
// registries on loopback; the checkout is never changed.
func TestPlanWithConfig(t *testing.T) {
	hostA, stopA := testenv.StartInProcessRegistry()
	defer stopA()
	hostB, stopB := testenv.StartInProcessRegistry()
	defer stopB()
	ctx := context.Background()
	for _, host := range []string{hostA, hostB} {
		for _, tag := range []string{"1.0.0", "1.1.0"} {
			if _, err := testenv.PushImage(ctx, host, authn.Anonymous, "team/app", tag, testenv.ImageSpec{Created: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	kustomization := "images:\n- name: " + hostA + "/team/app\n  newTag: 1.0.0 # {\"$imagepolicy\": \"my-demo:app:tag\"}\n"
	files := map[string]string{
		"apps/a.yaml":             deployment("a", hostA+"/team/app:1.0.0"),
		"apps/b.yaml":             deployment("b", hostB+"/team/app:1.0.0"),
		"apps/kustomization.yaml": kustomization,
		"elsewhere/outside.yaml":  deployment("outside", hostA+"/team/app:1.0.0"),
	}
	writeFiles(t, dir, files)
	cfg := filepath.Join(t.TempDir(), "repos.yaml")
	repo := func(name, spec string) string {
		return `apiVersion: imagebot.dev/v1alpha1
kind: Repository
metadata: {name: ` + name + `}
spec:
  git: {url: "ssh://git@127.0.0.1/config.git", auth: {sshKeyFile: /dev/null, knownHostsFile: /dev/null}` + spec
	}
	if err := os.WriteFile(cfg, []byte(repo("only-a", "}\n  images: {include: [\""+hostA+"/*\"]}\n")+"---\n"+
		repo("apps", ", paths: [apps]}\n  markers:\n    \"my-demo:app\": {image: "+hostA+"/team/app, policy: \"semver:~1\"}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	imageA := "        image: " + hostA + "/team/app:"
	imageB := "        image: " + hostB + "/team/app:"
	marker := "  newTag: 1.0.0 # {\"$imagepolicy\": \"my-demo:app:tag\"}"
	markerNext := strings.Replace(marker, "1.0.0", "1.1.0", 1)

	// Without --config: every automated workload, both registries; the marker is unknown.
	out := run(t, "plan", "--path", dir)
	if !strings.Contains(out, "config: none") || !changed(out, imageB+"1.0.0", imageB+"1.1.0") ||
		!strings.Contains(out, "+++ b/elsewhere/outside.yaml") || !strings.Contains(out, "unknown image policy") {
		t.Errorf("plan without --config:\n%s", out)
	}

	// Only registry A: B's workload is skipped and said to be; A's are planned.
	out = run(t, "plan", "--path", dir, "--config", cfg, "--repository", "only-a")
	if !strings.Contains(out, `config: repository "only-a" from `+cfg) ||
		!strings.Contains(out, "Deployment/my-demo/b app: skipped: "+hostB+"/team/app is not matched by spec.images.include [\""+hostA+"/*\"]") ||
		strings.Contains(out, "+"+imageB) || strings.Contains(out, "+++ b/apps/b.yaml") ||
		!strings.Contains(out, "+++ b/apps/a.yaml") || !changed(out, imageA+"1.0.0", imageA+"1.1.0") {
		t.Errorf("plan --config (include only %s):\n%s", hostA, out)
	}

	// paths: [apps] and the marker map: the Deployment outside apps/ is not planned, the
	// marker is.
	out = run(t, "plan", "--path", dir, "--config", cfg, "--repository", "apps")
	if strings.Contains(out, "outside") || !strings.Contains(out, "+++ b/apps/a.yaml") || !strings.Contains(out, "+++ b/apps/b.yaml") ||
		!strings.Contains(out, "+++ b/apps/kustomization.yaml") || !changed(out, marker, markerNext) || strings.Contains(out, "unknown image policy") {
		t.Errorf("plan --config (paths [apps], markers):\n%s", out)
	}
	for p, content := range files {
		if b, _ := os.ReadFile(filepath.Join(dir, p)); string(b) != content {
			t.Errorf("plan changed %s:\n%s", p, b)
		}
	}

	// list-workloads reads the checkout the same way.
	out = run(t, "list-workloads", "--path", dir, "--config", cfg, "--repository", "only-a")
	if !strings.Contains(out, "Deployment/my-demo/b") || !strings.Contains(out, "excluded by spec.images") ||
		strings.Count(out, "  automated") != 2 {
		t.Errorf("list-workloads --config (include only %s):\n%s", hostA, out)
	}
	out = run(t, "list-workloads", "--path", dir, "--config", cfg, "--repository", "apps", "-o", "json")
	if strings.Contains(out, "outside") || !strings.Contains(out, `"File": "apps/kustomization.yaml"`) {
		t.Errorf("list-workloads --config (paths [apps]):\n%s", out)
	}

	// release --update-all-images on the checkout: an image the config leaves out is not
	// released (the daemon does not scan it); one it includes is.
	if out, code := runCode("release", "--path", dir, "--config", cfg, "--repository", "only-a", "-w", "my-demo/b", "--update-all-images"); code != exitError ||
		!strings.Contains(out, "not automated: "+hostB+"/team/app is not matched by spec.images.include") {
		t.Errorf("release of an excluded image: exit %d\n%s", code, out)
	}
	run(t, "release", "--path", dir, "--config", cfg, "--repository", "only-a", "-w", "my-demo/a", "--update-all-images")
	if b, _ := os.ReadFile(filepath.Join(dir, "apps/a.yaml")); string(b) != strings.Replace(files["apps/a.yaml"], ":1.0.0", ":1.1.0", 1) {
		t.Errorf("after release --update-all-images --config:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "apps/b.yaml")); string(b) != files["apps/b.yaml"] {
		t.Errorf("a release of a changed b.yaml:\n%s", b)
	}
	// With paths: [apps], the workload outside is not found (as through the daemon).
	if out, code := runCode("lock", "--path", dir, "--config", cfg, "--repository", "apps", "-w", "my-demo/outside"); code != exitNotFound {
		t.Errorf("lock outside spec.git.paths: exit %d\n%s", code, out)
	}

	// Picking the repository: several need --repository (2), an unknown one is not found (3).
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"plan", "--path", dir, "--config", cfg}, exitUsage, "holds 2 repositories (only-a, apps): pick one with --repository"},
		{[]string{"plan", "--path", dir, "--config", cfg, "--repository", "nope"}, exitNotFound, `no such repository "nope" (it has only-a, apps)`},
		{[]string{"list-workloads", "--path", dir, "--repository", "apps"}, exitUsage, "--repository needs --config"},
		{[]string{"release", "--daemon", "http://127.0.0.1:1", "--config", cfg, "-w", "a", "--update-all-images"}, exitUsage, "--config is for a local checkout"},
		{[]string{"plan", "--path", dir, "--config", filepath.Join(dir, "missing.yaml")}, exitError, "missing.yaml"},
	} {
		out, code := runCode(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("imagebot %s: exit %d, want %d with %q:\n%s", strings.Join(tc.args, " "), code, tc.code, tc.out, out)
		}
	}
}

// TestPlanConfigCredentials: a registry that wants a password is scanned with the
// config's dockerConfigFile for its host, as the daemon scans it; without --config (and
// nothing in the default keychain) plan cannot list its tags (401): it names the failed
// scan and exits 5.
func TestPlanConfigCredentials(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // an empty default keychain
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "robot" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tag := range []string{"1.0.0", "1.1.0"} {
		if _, err := testenv.PushImage(context.Background(), host, &authn.Basic{Username: "robot", Password: "s3cret"}, "team/app", tag,
			testenv.ImageSpec{Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.yaml": deployment("a", host+"/team/app:1.0.0")})
	secrets := t.TempDir()
	dockerConfig := filepath.Join(secrets, "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("robot:s3cret"))
	writeFiles(t, secrets, map[string]string{"config.json": `{"auths": {"` + host + `": {"auth": "` + auth + `"}}}`})
	cfg := filepath.Join(secrets, "repo.yaml")
	writeFiles(t, secrets, map[string]string{"repo.yaml": `apiVersion: imagebot.dev/v1alpha1
kind: Repository
metadata: {name: private}
spec:
  git: {url: "ssh://git@127.0.0.1/config.git", auth: {sshKeyFile: /dev/null, knownHostsFile: /dev/null}}
  registries:
  - {host: "` + host + `", dockerConfigFile: ` + dockerConfig + `, insecure: true}
`})

	// The registry refuses: the scan failed, plan names it and exits 5.
	stdout, stderr, code := runSplit("plan", "--path", dir)
	if code != exitScanFailed || stdout != "nothing to change among the images scanned; 1 scan failed\n" ||
		!strings.Contains(stderr, "Deployment/my-demo/a app: image "+host+"/team/app: scan failed: ") || !strings.Contains(stderr, "401") {
		t.Errorf("plan without the credentials: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	out := run(t, "plan", "--path", dir, "--config", cfg)
	image := "        image: " + host + "/team/app:"
	if !changed(out, image+"1.0.0", image+"1.1.0") || !strings.Contains(out, host+" (credentials)") {
		t.Errorf("plan --config with the registry's dockerConfigFile:\n%s", out)
	}
}
