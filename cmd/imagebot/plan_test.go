package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"imagebot.dev/imagebot/internal/testenv"
)

// TestPlanAndRelease run against go-containerregistry's in-process registry on loopback.
func TestPlanAndRelease(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour)
	for i, tag := range []string{"develop-v1.8.0", "develop-v1.8.1", "master-1"} {
		if _, err := testenv.PushImage(ctx, host, authn.Anonymous, "team/flaskapp", tag, testenv.ImageSpec{Created: t0.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := testenv.PushImage(ctx, host, authn.Anonymous, "library/nginx", "1.16", testenv.ImageSpec{Created: t0}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "flask.yaml")
	manifest := strings.NewReplacer("nginx:1.16", host+"/library/nginx:1.16", "registry.example.com", host).Replace(seedManifest)
	os.WriteFile(file, []byte(manifest), 0o644)
	read := func() string { b, _ := os.ReadFile(file); return string(b) }

	out := run(t, "plan", "--path", dir)
	if !strings.Contains(out, "-        image: "+host+"/team/flaskapp:develop-v1.8.0\n+        image: "+host+"/team/flaskapp:develop-v1.8.1\n") {
		t.Errorf("plan:\n%s", out)
	}
	if read() != manifest {
		t.Error("plan changed the checkout")
	}
	out = run(t, "release", "--path", dir, "-w", "my-demo/fluxdemo", "--update-all-images", "--dry-run")
	if !strings.Contains(out, "+        image: "+host+"/team/flaskapp:develop-v1.8.1") || read() != manifest {
		t.Errorf("release --update-all-images --dry-run:\n%s", out)
	}
	run(t, "release", "--path", dir, "-w", "my-demo/fluxdemo", "--update-image", host+"/team/flaskapp:master-1")
	if want := strings.Replace(manifest, "flaskapp:develop-v1.8.0", "flaskapp:master-1", 1); read() != want {
		t.Errorf("after release --update-image:\n%s", read())
	}
	root := newRoot()
	root.SetOut(&strings.Builder{})
	root.SetArgs([]string{"release", "--path", dir, "-w", "my-demo/fluxdemo", "--update-image", host + "/team/other:v1"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "release Deployment/my-demo/fluxdemo: no matching container: no container runs "+host+"/team/other") {
		t.Errorf("release of an image no container runs: %v", err)
	}
}

// runSplit runs imagebot with args and returns its stdout, its stderr (with the error main
// would print) and the exit code main would give.
func runSplit(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil {
		fmt.Fprintln(&errOut, "imagebot:", err)
	}
	return out.String(), errOut.String(), exitCode(err)
}

// TestPlanScanFailed: one image's repository does not exist on a real in-process registry
// (404 on its tag list). plan names that workload, container, image and the 404 on stderr,
// still shows the other image's diff, and exits 5 (exitScanFailed), never saying "nothing to
// change". release --update-all-images on a workload with a good and a failing container
// releases the good one, leaves the other, and exits 5; when only the failing one is left
// it says "nothing to change among the images scanned; 1 scan failed".
func TestPlanScanFailed(t *testing.T) {
	host := registryWithApp(t)
	dir := t.TempDir()
	both := strings.Replace(deployment("both", host+"/team/app:1.0.0"), "    imagebot.dev/tag.app: semver:~1\n",
		"    imagebot.dev/tag.app: semver:~1\n    imagebot.dev/tag.gone: semver:~1\n", 1) +
		"      - name: gone\n        image: " + host + "/team/missing:1.0.0\n"
	files := map[string]string{
		"good.yaml": deployment("good", host+"/team/app:1.0.0"),
		"bad.yaml":  deployment("bad", host+"/team/missing:1.0.0"),
		"both.yaml": both,
	}
	writeFiles(t, dir, files)
	image := "        image: " + host + "/team/app:"
	missing := host + "/team/missing"

	stdout, stderr, code := runSplit("plan", "--path", dir)
	if code != exitScanFailed {
		t.Errorf("plan with a failing scan: exit %d, want %d", code, exitScanFailed)
	}
	for _, w := range []string{"Deployment/my-demo/bad app", "Deployment/my-demo/both gone"} {
		if want := w + ": image " + missing + ": scan failed: "; !strings.Contains(stderr, want) {
			t.Errorf("plan's stderr does not name the failed scan %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stderr, "404") || !strings.Contains(stderr, "2 of 4 scans failed") {
		t.Errorf("plan's stderr lacks the reason (404) or the count:\n%s", stderr)
	}
	if !strings.Contains(stdout, "+++ b/good.yaml") || !strings.Contains(stdout, "+++ b/both.yaml") ||
		!changed(stdout, image+"1.0.0", image+"1.1.0") || strings.Contains(stdout, "missing") || strings.Contains(stdout, "nothing to change") {
		t.Errorf("plan's diff of the images scanned:\n%s", stdout)
	}

	// Only the failing container left: nothing to change among the images scanned.
	stdout, stderr, code = runSplit("release", "--path", dir, "-w", "my-demo/bad", "--update-all-images", "--dry-run")
	if code != exitScanFailed || stdout != "nothing to change among the images scanned; 1 scan failed\n" ||
		!strings.Contains(stderr, "Deployment/my-demo/bad app: image "+missing+": scan failed: ") || !strings.Contains(stderr, "404") {
		t.Errorf("release --dry-run of the failing image: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	// A good and a failing container: the good one is released, the other keeps its image.
	stdout, stderr, code = runSplit("release", "--path", dir, "-w", "my-demo/both", "--update-all-images")
	if code != exitScanFailed || !strings.Contains(stdout, "1.1.0") ||
		!strings.Contains(stderr, "Deployment/my-demo/both gone: image "+missing+": scan failed: ") {
		t.Errorf("release of a good and a failing container: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "both.yaml")); string(b) != strings.Replace(both, "app:1.0.0", "app:1.1.0", 1) {
		t.Errorf("after the release with a failed scan:\n%s", b)
	}
	for _, f := range []string{"good.yaml", "bad.yaml"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); string(b) != files[f] {
			t.Errorf("%s changed:\n%s", f, b)
		}
	}
}

// TestPlanNothingToChange: every scan succeeds and every image is already what its policy
// picks: plan says "nothing to change" and exits 0.
func TestPlanNothingToChange(t *testing.T) {
	host := registryWithApp(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": deployment("a", host+"/team/app:1.1.0"), "b.yaml": deployment("b", host+"/team/app:1.1.0")})
	stdout, stderr, code := runSplit("plan", "--path", dir)
	if code != 0 || stdout != "nothing to change\n" || strings.Contains(stderr, "scan failed") {
		t.Errorf("plan with nothing to change: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	stdout, _, code = runSplit("release", "--path", dir, "-w", "my-demo/a", "--update-all-images", "--dry-run")
	if code != 0 || stdout != "nothing to change\n" {
		t.Errorf("release --dry-run with nothing to change: exit %d\n%s", code, stdout)
	}
}

// registryWithApp starts an in-process registry for the test with team/app at 1.0.0 and
// 1.1.0 and returns its host.
func registryWithApp(t *testing.T) string {
	t.Helper()
	host, stop := testenv.StartInProcessRegistry()
	t.Cleanup(stop)
	for _, tag := range []string{"1.0.0", "1.1.0"} {
		if _, err := testenv.PushImage(context.Background(), host, authn.Anonymous, "team/app", tag, testenv.ImageSpec{Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	return host
}
