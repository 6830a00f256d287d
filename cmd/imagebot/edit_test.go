package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/testenv"
)

// runCode runs the CLI and returns its output and exit code.
func runCode(args ...string) (string, int) {
	var out bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil {
		fmt.Fprintln(&out, "error:", err)
	}
	return out.String(), exitCode(err)
}

// TestEditThroughDaemon: release and lock from the CLI through a running daemon, which
// commits them on the test git server; the exit codes say locked and not found.
func TestEditThroughDaemon(t *testing.T) {
	env := testenv.New(t, testenv.Options{GitServer: true})
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	if _, err := testenv.PushImage(context.Background(), host, authn.Anonymous, "team/flaskapp", "develop-v1.8.1", testenv.ImageSpec{Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	manifest := strings.NewReplacer("nginx:1.16", host+"/library/nginx:1.16", "registry.example.com", host,
		"    flux.weave.works/automated: 'true'\n", "").Replace(seedManifest)
	url, err := env.Git.CreateRepo("config", "main", map[string]string{"apps/flask.yaml": manifest})
	if err != nil {
		t.Fatal(err)
	}
	repoPath := env.Git.RepoPath("config")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "demo.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`apiVersion: imagebot.dev/v1alpha1
kind: Repository
metadata: {name: demo}
spec:
  git:
    url: %s
    interval: 1h
    auth: {sshKeyFile: %s, knownHostsFile: %s}
  images: {include: ["127.0.0.1:*"]}
`, url, env.Git.DeployKey, env.Git.KnownHosts)), 0o644)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	d, err := daemon.New(daemon.Options{ConfigPaths: []string{cfg}, DataDir: filepath.Join(dir, "data"), Listen: addr, WebhookToken: "hook-token", APIToken: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	daemonURL := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var st daemon.Status
		if resp, err := http.Get(daemonURL + "/api/v1/status"); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if len(st.Repositories) == 1 && st.Repositories[0].Revision != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not reconcile within 30s: %+v", st)
		}
	}
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("s3cret\n"), 0o600)
	head := func() (string, string) {
		c, err := testenv.Head(repoPath, "main")
		if err != nil {
			t.Fatal(err)
		}
		return c.Hash.String(), c.Message
	}
	gitFile := func() string { s, _ := testenv.ReadFile(repoPath, "main", "apps/flask.yaml"); return s }

	// A release with --daemon: committed and pushed by the daemon.
	newImage := host + "/team/flaskapp:develop-v1.8.1"
	out, code := runCode("release", "--daemon", daemonURL, "--token-file", token, "-w", "my-demo/fluxdemo", "-i", newImage, "--user", "alice")
	h, m := head()
	want := strings.Replace(manifest, "flaskapp:develop-v1.8.0", "flaskapp:develop-v1.8.1", 1)
	if code != 0 || !strings.Contains(out, "demo: pushed "+h+"\n") || !strings.HasPrefix(m, "Release my-demo/fluxdemo flask to develop-v1.8.1 (by alice)\n") || gitFile() != want {
		t.Fatalf("release: exit %d\n%s\ncommit %q\n%s", code, out, m, gitFile())
	}

	// lock through $IMAGEBOT_URL and $IMAGEBOT_TOKEN_FILE.
	t.Setenv("IMAGEBOT_URL", daemonURL)
	t.Setenv("IMAGEBOT_TOKEN_FILE", token)
	out, code = runCode("lock", "-w", "my-demo/fluxdemo", "-m", "incident 42", "--user", "alice")
	locked, m := head()
	if code != 0 || !strings.Contains(out, "demo: pushed "+locked) || !strings.HasPrefix(m, "Lock Deployment/my-demo/fluxdemo: incident 42 (by alice)\n") ||
		!strings.Contains(gitFile(), "flux.weave.works/locked: \"true\"\n") {
		t.Fatalf("lock: exit %d\n%s\ncommit %q\n%s", code, out, m, gitFile())
	}

	// Refused, not found, bad usage, bad token: the exit codes tell them apart; nothing is
	// committed.
	badToken := filepath.Join(dir, "bad-token")
	os.WriteFile(badToken, []byte("nope\n"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"release", "-w", "my-demo/fluxdemo", "-i", host + "/team/flaskapp:develop-v1.8.0"}, exitRefused, "workload is locked (incident 42, by alice)"},
		{[]string{"release", "-w", "my-demo/nope", "-i", newImage}, exitNotFound, "workload not found"},
		{[]string{"unlock", "-w", "StatefulSet/my-demo/fluxdemo"}, exitNotFound, "workload not found"},
		{[]string{"release", "-w", "my-demo/fluxdemo", "-i", newImage, "--path", dir, "--daemon", daemonURL}, exitUsage, "give --daemon or --path, not both"},
		{[]string{"release", "-w", "my-demo/fluxdemo"}, exitUsage, "give exactly one of --update-image and --update-all-images"},
		{[]string{"automate", "-w", "my-demo/fluxdemo", "--token-file", badToken}, exitError, "401 Unauthorized"},
	} {
		out, code := runCode(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("imagebot %s: exit %d, want %d with %q:\n%s", strings.Join(tc.args, " "), code, tc.code, tc.out, out)
		}
	}
	if h, _ := head(); h != locked {
		t.Fatalf("a refused edit committed %s", h)
	}

	// A forced dry run shows the diff, still commits nothing.
	out, code = runCode("release", "-w", "my-demo/fluxdemo", "-i", host+"/team/flaskapp:develop-v1.8.0", "--force", "--dry-run")
	if code != 0 || !strings.Contains(out, "-        image: "+newImage+"\n+        image: "+host+"/team/flaskapp:develop-v1.8.0\n") {
		t.Errorf("release --force --dry-run: exit %d\n%s", code, out)
	}
	if h, _ := head(); h != locked {
		t.Fatalf("a dry run committed %s", h)
	}
}
