package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/testenv"
)

// TestPlanBigRepository: Flux v1's default policy (glob:*, newest build first) on a Docker
// Hub-like repository of 900 tags over 300 images gets its decision in one plan run, with at
// most one manifest GET per image, no Authorization header sent to the CDN, and progress on
// stderr while it scans. The registry's rate is raised from the default 10/s to 300/s in the
// config (the CDN it redirects to shares it) so that the scan lasts about 5 s, not 150.
func TestPlanBigRepository(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hub, err := testenv.StartProfileRegistry(ctx, testenv.ProfileOptions{Profile: testenv.ProfileDockerHub, PullBudget: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range 300 {
		d, err := hub.Push(ctx, "library/big", fmt.Sprintf("img-%03d-a", i), testenv.ImageSpec{Created: base.Add(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		for _, suffix := range []string{"b", "c"} {
			if err := hub.Tag(ctx, "library/big", d, fmt.Sprintf("img-%03d-%s", i, suffix)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: big
  namespace: my-demo
  annotations:
    fluxcd.io/automated: "true"
spec:
  template:
    spec:
      containers:
      - name: app
        image: ` + hub.Host + `/library/big:img-000-a
`})
	cfg := filepath.Join(t.TempDir(), "repo.yaml")
	writeFiles(t, filepath.Dir(cfg), map[string]string{"repo.yaml": `apiVersion: imagebot.dev/v1alpha1
kind: Repository
metadata: {name: big}
spec:
  git: {url: "ssh://git@127.0.0.1/config.git", auth: {sshKeyFile: /dev/null, knownHostsFile: /dev/null}}
  registries:
  - {host: "` + hub.Host + `", insecure: true, rps: 300, burst: 20}
`})
	hub.ResetCounts()
	stdout, stderr, code := runSplit("plan", "--path", dir, "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "+        image: "+hub.Host+"/library/big:img-299-") {
		t.Fatalf("plan: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "scanning "+hub.Host+"/library/big: described ") || !strings.Contains(stderr, " of 900 tags") {
		t.Errorf("no progress on stderr during a 5 s scan:\n%s", stderr)
	}
	c := hub.Counts()
	if c.ManifestGETs > 300 || c.Pulls > 300 || c.CDNWithAuthorization != 0 || c.RateLimited != 0 {
		t.Errorf("%d manifest GETs (%d pulls), %d CDN requests with Authorization, %d 429s; want ≤ 300, ≤ 300, 0, 0",
			c.ManifestGETs, c.Pulls, c.CDNWithAuthorization, c.RateLimited)
	}
}
