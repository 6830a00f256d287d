package main

import (
	"context"
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
