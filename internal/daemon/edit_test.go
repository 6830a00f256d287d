package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/testenv"
)

// post sends an edit to the daemon with token ("" for none) and returns the status, the
// answer and the error text.
func (w *world) post(t *testing.T, path, token string, body any) (int, daemon.EditResponse, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, w.daemon+path, bytes.NewReader(b))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out daemon.EditResponse
	var e daemon.ErrorResponse
	if resp.StatusCode == http.StatusOK {
		err = json.NewDecoder(resp.Body).Decode(&out)
	} else {
		err = json.NewDecoder(resp.Body).Decode(&e)
	}
	if err != nil {
		t.Fatalf("POST %s: %s: %v", path, resp.Status, err)
	}
	return resp.StatusCode, out, e.Error
}

// TestEditAPI: the fluxctl-like edits through the daemon: each is one commit on the git
// server with a message naming it and who asked, changing exactly the bytes it should; a
// dry run commits nothing; a locked workload is left alone by automation and refused a
// release; bad tokens, unknown workloads and bad input get 401, 404 and 400.
func TestEditAPI(t *testing.T) {
	w := startWorld(t)
	reg := w.env.Registry.Host
	const token = apiToken
	file := strings.ReplaceAll(seed, "REG", reg)
	head := func() (string, string) {
		t.Helper()
		c, err := testenv.Head(w.repoPath, "main")
		if err != nil {
			t.Fatal(err)
		}
		return c.Hash.String(), c.Message
	}
	gitFile := func() string {
		t.Helper()
		got, err := testenv.ReadFile(w.repoPath, "main", "apps/flask.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	seedHead, _ := head()
	release := func(image string) daemon.ReleaseRequest {
		return daemon.ReleaseRequest{Workload: "my-demo/fluxdemo", Image: reg + "/team/flaskapp:" + image, User: "alice"}
	}

	// Refused before anything is read: no token, a wrong one; unknown things; bad input.
	for _, tc := range []struct {
		name, path, token string
		body              any
		code              int
		err               string
	}{
		{"no token", "/api/v1/release", "", release("develop-v1.8.1"), 401, "unauthorized"},
		{"wrong token", "/api/v1/annotate", "nope", daemon.AnnotateRequest{Workload: "my-demo/fluxdemo", Automated: new(bool)}, 401, "unauthorized"},
		{"the webhook token", "/api/v1/release", "hook-token", release("develop-v1.8.1"), 401, "API token"},
		{"unknown workload", "/api/v1/release", token, daemon.ReleaseRequest{Workload: "my-demo/nope", Image: reg + "/team/flaskapp:x"}, 404,
			"repository demo: release Deployment/my-demo/nope: workload not found"},
		{"unknown workload (annotate)", "/api/v1/annotate", token, daemon.AnnotateRequest{Workload: "StatefulSet/my-demo/fluxdemo", Automated: new(bool)}, 404,
			"workload not found"},
		{"unknown repository", "/api/v1/release", token, daemon.ReleaseRequest{Repository: "other", Workload: "my-demo/fluxdemo", AllImages: true}, 404,
			`no such repository: "other"`},
		{"no container runs the image", "/api/v1/release", token, daemon.ReleaseRequest{Workload: "my-demo/fluxdemo", Image: reg + "/team/other:v1"}, 404,
			"no container runs " + reg + "/team/other (it has flask=" + reg + "/team/flaskapp:develop-v1.8.0)"},
		{"unknown container (policy)", "/api/v1/annotate", token, daemon.AnnotateRequest{Workload: "my-demo/fluxdemo", Tags: map[string]string{"nope": "glob:*"}}, 404,
			`unknown container "nope"`},
		{"image and allImages", "/api/v1/release", token, daemon.ReleaseRequest{Workload: "my-demo/fluxdemo", Image: "x", AllImages: true}, 400,
			"give exactly one of image and allImages"},
		{"bad workload", "/api/v1/release", token, daemon.ReleaseRequest{Workload: "a/b/c/d", AllImages: true}, 400, `workload "a/b/c/d"`},
		{"unknown field", "/api/v1/annotate", token, map[string]any{"workload": "fluxdemo", "lock": true}, 400, `unknown field "lock"`},
		{"nothing to edit", "/api/v1/annotate", token, daemon.AnnotateRequest{Workload: "my-demo/fluxdemo"}, 400, "nothing to edit"},
		{"a line break", "/api/v1/annotate", token, daemon.AnnotateRequest{Workload: "my-demo/fluxdemo", Locked: ptr(true), Message: "a\nb"}, 400, "control characters"},
	} {
		code, _, msg := w.post(t, tc.path, tc.token, tc.body)
		if code != tc.code || !strings.Contains(msg, tc.err) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, msg, tc.code, tc.err)
		}
	}
	if h, _ := head(); h != seedHead {
		t.Fatalf("a refused edit committed %s", h)
	}

	// Deautomate, so that the releases below are not automation's business.
	code, out, msg := w.post(t, "/api/v1/annotate", token, daemon.AnnotateRequest{Workload: "my-demo/fluxdemo", Automated: ptr(false), User: "alice"})
	h, m := head()
	file = strings.Replace(file, "    flux.weave.works/automated: 'true'\n", "", 1)
	if code != 200 || out.Commit != h || !strings.HasPrefix(m, "Deautomate Deployment/my-demo/fluxdemo (by alice)\n\n- apps/flask.yaml:7 Deployment/my-demo/fluxdemo: remove flux.weave.works/automated\n") || gitFile() != file {
		t.Fatalf("deautomate: %d %+v %s\ncommit %s %q\n%s", code, out, msg, h, m, gitFile())
	}

	// Release a given tag: one commit, one changed line.
	if _, err := w.env.Registry.Push(context.Background(), "team/flaskapp", "develop-v1.8.1", testenv.ImageSpec{Created: w.t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	code, out, msg = w.post(t, "/api/v1/release", token, release("develop-v1.8.1"))
	h, m = head()
	file = strings.Replace(file, "flaskapp:develop-v1.8.0", "flaskapp:develop-v1.8.1", 1)
	wantMsg := "Release my-demo/fluxdemo flask to develop-v1.8.1 (by alice)\n\n- apps/flask.yaml:13 Deployment/my-demo/fluxdemo flask: " +
		reg + "/team/flaskapp:develop-v1.8.0 -> " + reg + "/team/flaskapp:develop-v1.8.1\n"
	if code != 200 || out.Commit != h || m != wantMsg || out.Message != m || len(out.Changes) != 1 || gitFile() != file {
		t.Fatalf("release: %d %+v %s\ncommit %s %q, want %q\n%s", code, out, msg, h, m, wantMsg, gitFile())
	}
	released := h

	// A dry run answers with the diff and commits nothing; releasing what runs changes nothing.
	dry := release("develop-v1.8.0")
	dry.DryRun = true
	code, out, msg = w.post(t, "/api/v1/release", token, dry)
	wantDiff := "--- a/apps/flask.yaml\n+++ b/apps/flask.yaml\n@@ -13 +13 @@\n-        image: " + reg + "/team/flaskapp:develop-v1.8.1\n+        image: " + reg + "/team/flaskapp:develop-v1.8.0\n"
	if code != 200 || !out.DryRun || out.Diff != wantDiff || out.Commit != "" || len(out.Changes) != 1 {
		t.Errorf("dry run: %d %+v %s\nwant diff %q", code, out, msg, wantDiff)
	}
	code, out, msg = w.post(t, "/api/v1/release", token, release("develop-v1.8.1"))
	if code != 200 || out.Commit != "" || len(out.Changes) != 0 {
		t.Errorf("release of what runs: %d %+v %s", code, out, msg)
	}
	if h, _ := head(); h != released || gitFile() != file {
		t.Fatalf("a dry run or an empty release committed %s", h)
	}

	// Lock, then automate: automation leaves the locked workload alone.
	code, out, msg = w.post(t, "/api/v1/annotate", token, daemon.AnnotateRequest{Workload: "my-demo/fluxdemo", Locked: ptr(true), Message: "incident 42", User: "alice"})
	h, m = head()
	file = strings.Replace(file, "glob:develop-v*\n", "glob:develop-v*\n    flux.weave.works/locked: \"true\"\n    flux.weave.works/locked_msg: incident 42\n    flux.weave.works/locked_user: alice\n", 1)
	if code != 200 || out.Commit != h || !strings.HasPrefix(m, "Lock Deployment/my-demo/fluxdemo: incident 42 (by alice)\n\n- apps/flask.yaml:7 ") || gitFile() != file {
		t.Fatalf("lock: %d %+v %s\ncommit %q\n%s", code, out, msg, m, gitFile())
	}
	code, out, msg = w.post(t, "/api/v1/annotate", token, daemon.AnnotateRequest{Workload: "my-demo/fluxdemo", Automated: ptr(true), User: "alice"})
	automated, m := head()
	if code != 200 || out.Commit != automated || !strings.HasPrefix(m, "Automate Deployment/my-demo/fluxdemo (by alice)\n") {
		t.Fatalf("automate: %d %+v %s\ncommit %q", code, out, msg, m)
	}
	if _, err := w.env.Registry.Push(context.Background(), "team/flaskapp", "develop-v1.8.2", testenv.ImageSpec{Created: w.t0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// A reconcile now (and the webhook's): the locked workload is not updated.
	req, _ := http.NewRequest(http.MethodPost, w.daemon+"/api/v1/sync", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for range 2 {
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("sync: %v %v", resp, err)
		}
		resp.Body.Close()
		time.Sleep(200 * time.Millisecond)
	}
	if h, _ := head(); h != automated || !strings.Contains(gitFile(), "flaskapp:develop-v1.8.1\n") {
		t.Fatalf("the locked workload was updated: %s\n%s", h, gitFile())
	}

	// A release onto the locked workload is refused (409); forced, it goes through.
	code, _, msg = w.post(t, "/api/v1/release", token, release("develop-v1.8.0"))
	if code != http.StatusConflict || !strings.Contains(msg, "release Deployment/my-demo/fluxdemo: workload is locked (incident 42, by alice): unlock it or force the release") {
		t.Errorf("release onto a locked workload: %d %q", code, msg)
	}
	if h, _ := head(); h != automated {
		t.Fatalf("a refused release committed %s", h)
	}

	// Unlocked, automation applies the newer tag it held back (so the lock was what held it).
	code, out, msg = w.post(t, "/api/v1/annotate", token, daemon.AnnotateRequest{Workload: "my-demo/fluxdemo", Locked: ptr(false), User: "alice"})
	if code != 200 || out.Commit == "" || strings.Contains(gitFile(), "locked") {
		t.Fatalf("unlock: %d %+v %s\n%s", code, out, msg, gitFile())
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(gitFile(), "flaskapp:develop-v1.8.2\n") {
		if time.Now().After(deadline) {
			t.Fatalf("develop-v1.8.2 not applied within 30s of the unlock:\n%s", gitFile())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The git server gone: the edit fails with 502 and the git error.
	w.env.Git.Stop()
	code, _, msg = w.post(t, "/api/v1/annotate", token, daemon.AnnotateRequest{Workload: "my-demo/fluxdemo", Automated: ptr(false)})
	if code != http.StatusBadGateway || !strings.Contains(msg, "repository demo: commit and push: git ") {
		t.Errorf("edit with the git server down: %d %q", code, msg)
	}
}

func ptr[T any](v T) *T { return &v }

// TestEditAPIOff: without an API token the edit API refuses everyone (the webhook token
// included) and commits nothing; a sync still takes the webhook token.
func TestEditAPIOff(t *testing.T) {
	w := startWorldWith(t, func(o *daemon.Options) { o.APIToken = "" }, "")
	before, err := testenv.Head(w.repoPath, "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"", "hook-token", apiToken} {
		code, _, msg := w.post(t, "/api/v1/release", token, daemon.ReleaseRequest{Workload: "my-demo/fluxdemo", AllImages: true})
		if code != http.StatusForbidden || !strings.Contains(msg, "--api-token-file") {
			t.Errorf("token %q: %d %s", token, code, msg)
		}
	}
	if head, _ := testenv.Head(w.repoPath, "main"); head.Hash != before.Hash {
		t.Errorf("a commit with the edit API off: %s", head.Message)
	}
	req, _ := http.NewRequest(http.MethodPost, w.daemon+"/api/v1/sync", nil)
	req.Header.Set("Authorization", "Bearer hook-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sync with the webhook token: %v %v", resp, err)
	}
	resp.Body.Close()
}
