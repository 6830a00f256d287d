package daemon_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/testenv"
)

const seed = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: fluxdemo
  namespace: my-demo
  annotations:
    flux.weave.works/automated: 'true'
    flux.weave.works/tag.flask: glob:develop-v*
spec:
  template:
    spec:
      containers:
      - name: flask
        image: REG/team/flaskapp:develop-v1.8.0
`

const (
	hmacSecret = "hmac-secret"
	apiToken   = "api-token" // the edit API's; not the webhook token
)

// world is a daemon watching one repository on the test git server, whose images live on
// the test registry, which sends its webhooks to the daemon.
type world struct {
	env      *testenv.Env
	daemon   string // http://127.0.0.1:PORT
	repoPath string
	url      string // the repository's ssh URL
	cfgFile  string
	t0       time.Time
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startWorld(t testing.TB) *world { return startWorldWith(t, nil, "") }

// startWorldWith is startWorld with the daemon's options adjusted by mod and spec appended
// to the repository's spec (indented by two spaces).
func startWorldWith(t testing.TB, mod func(*daemon.Options), spec string) *world {
	addr := freeAddr(t)
	const token = "hook-token"
	env := testenv.New(t, testenv.Options{Registry: true, GitServer: true, RegistryOptions: testenv.RegistryOptions{
		NotifyURL:     "http://" + addr + "/hooks/registry/distribution",
		NotifyHeaders: map[string]string{"Authorization": "Bearer " + token}}})
	ctx := context.Background()
	w := &world{env: env, daemon: "http://" + addr, repoPath: env.Git.RepoPath("config"), t0: time.Now().Add(-24 * time.Hour)}
	if _, err := env.Registry.Push(ctx, "team/flaskapp", "develop-v1.8.0", testenv.ImageSpec{Created: w.t0}); err != nil {
		t.Fatal(err)
	}
	url, err := env.Git.CreateRepo("config", "main", map[string]string{"apps/flask.yaml": strings.ReplaceAll(seed, "REG", env.Registry.Host)})
	if err != nil {
		t.Fatal(err)
	}
	w.url = url
	dir := t.TempDir()
	cfgFile := writeConfig(t, dir, url, env.Git, "1h", "1h", spec)
	w.cfgFile = cfgFile
	opts := daemon.Options{ConfigPaths: []string{cfgFile}, DataDir: filepath.Join(dir, "data"),
		Listen: addr, WebhookToken: token, WebhookHMACSecret: []byte(hmacSecret), APIToken: apiToken}
	if mod != nil {
		mod(&opts)
	}
	runDaemon(t, opts)
	// Ready once the repository reconciled and the first scan is in.
	w.waitStatus(t, 30*time.Second, func(st daemon.Status) bool {
		return len(st.Images) == 1 && !st.Images[0].LastOK.IsZero() && len(st.Repositories) == 1 &&
			len(st.Repositories[0].Targets) == 1 && st.Repositories[0].Targets[0].Best == "develop-v1.8.0"
	})
	return w
}

// runDaemon runs a daemon with opts for the test's lifetime (its Run must end without
// error within 30 s of the test's end) and returns its URL once it listens.
func runDaemon(t testing.TB, opts daemon.Options) string {
	t.Helper()
	d, err := daemon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("the daemon did not stop within 30s of its context's end")
		}
	})
	for deadline := time.Now().Add(10 * time.Second); d.Addr() == nil; {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("daemon: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not listen within 10s")
		}
	}
	return "http://" + d.Addr().String()
}

// config returns the daemon's config file.
func (w *world) config(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(w.cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// setConfig replaces the daemon's config file whole (as editors and ConfigMap volumes do:
// a file caught half-written would read as a broken config).
func (w *world) setConfig(t testing.TB, body string) {
	t.Helper()
	tmp := w.cfgFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, w.cfgFile); err != nil {
		t.Fatal(err)
	}
}

func (w *world) status(t testing.TB) daemon.Status {
	resp, err := http.Get(w.daemon + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st daemon.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (w *world) waitStatus(t testing.TB, limit time.Duration, ok func(daemon.Status) bool) daemon.Status {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(w.daemon + "/api/v1/status")
		if err == nil {
			var st daemon.Status
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && ok(st) {
				return st
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(w.status(t), "", "  ")
			t.Fatalf("status not reached in %v:\n%s", limit, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pushAndWait pushes tag and returns how long until the git server holds the commit that
// sets it: the registry's webhook is the only trigger (every poll interval is an hour).
func (w *world) pushAndWait(t testing.TB, tag string, created time.Time) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := w.env.Registry.Push(ctx, "team/flaskapp", tag, testenv.ImageSpec{Created: created}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for ctx.Err() == nil {
		if got, err := testenv.ReadFile(w.repoPath, "main", "apps/flask.yaml"); err == nil && strings.Contains(got, "flaskapp:"+tag+"\n") {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s was not committed within 30s", tag)
	return 0
}

func TestWebhookToCommit(t *testing.T) {
	// A Slack-compatible sink on loopback receives the update.
	texts := make(chan string, 10)
	slack := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		var m map[string]string
		json.NewDecoder(r.Body).Decode(&m)
		texts <- m["text"]
	}))
	defer slack.Close()
	urlFile := filepath.Join(t.TempDir(), "slack-url")
	os.WriteFile(urlFile, []byte(slack.URL+"\n"), 0o600)
	w := startWorldWith(t, nil, "  notifications:\n  - urlFile: "+urlFile+"\n    slack: true\n    events: [update]\n")
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(w.daemon + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	latency := w.pushAndWait(t, "develop-v1.8.1", w.t0.Add(time.Hour))
	t.Logf("tag pushed -> commit pushed: %v", latency)
	head, _ := testenv.Head(w.repoPath, "main")
	if !strings.HasPrefix(head.Message, "Update my-demo/fluxdemo flask to develop-v1.8.1") {
		t.Errorf("commit: %q", head.Message)
	}
	st := w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool { return st.Repositories[0].Revision == head.Hash.String() })
	if st.Repositories[0].Targets[0].Image != w.env.Registry.Host+"/team/flaskapp:develop-v1.8.1" {
		t.Errorf("status: %+v", st.Repositories[0])
	}
	select {
	case text := <-texts:
		if !strings.Contains(text, "[demo] Update my-demo/fluxdemo flask to") || !strings.Contains(text, "develop-v1.8.1") {
			t.Errorf("notification: %q", text)
		}
	case <-time.After(10 * time.Second):
		t.Error("no notification of the update")
	}
	// The loop's metrics count the push.
	resp, err := http.Get(w.daemon + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`imagebot_pushes_total{repository="demo"} 1`, `imagebot_reconciles_total{repository="demo",result="ok"}`,
		`imagebot_containers{repository="demo",state="current"} 1`, `imagebot_scan_`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// An unauthenticated webhook is refused.
	resp, err = http.Post(w.daemon+"/hooks/registry/generic", "application/json", strings.NewReader(`{"image":"x","tag":"y"}`))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated webhook: %v %v", resp, err)
	}
	// With a token and an HMAC secret both set: GitHub's signed delivery is taken without the
	// token (GitHub cannot add one), an unsigned one with the token is not; the generic
	// format needs both.
	const ghBody = `{"action":"published","package":{"name":"app","namespace":"o","package_type":"CONTAINER","package_version":{"container_metadata":{"tag":{"name":"v1"}},"package_url":"ghcr.io/o/app:v1"}},"registry":{"url":"https://ghcr.io"}}`
	mac := hmac.New(sha256.New, []byte(hmacSecret))
	mac.Write([]byte(ghBody))
	signed := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	for _, c := range []struct {
		format, body string
		headers      map[string]string
		want         int
	}{
		{"github", ghBody, map[string]string{"X-GitHub-Event": "package", "X-Hub-Signature-256": signed}, http.StatusAccepted},
		{"github", ghBody, map[string]string{"X-GitHub-Event": "package", "Authorization": "Bearer hook-token"}, http.StatusUnauthorized},
		{"generic", `{"image":"127.0.0.1:1/x","tag":"y"}`, map[string]string{"Authorization": "Bearer hook-token"}, http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodPost, w.daemon+"/hooks/registry/"+c.format, strings.NewReader(c.body))
		for k, v := range c.headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s webhook with %v: %d, want %d", c.format, c.headers, resp.StatusCode, c.want)
		}
	}
}

// BenchmarkWebhookToCommit measures tag push (the registry's webhook as the only trigger)
// to the commit on the git server; it reports the median and the worst of b.N pushes.
func BenchmarkWebhookToCommit(b *testing.B) {
	benchPushes(b, startWorld(b))
}

// TestGitPushHook: a human commit is picked up at once when the git server's push webhook
// arrives (the git poll is an hour), for a correctly signed GitHub payload or a GitLab token.
func TestGitPushHook(t *testing.T) {
	w := startWorld(t)
	post := func(path string, headers map[string]string, body string) int {
		req, _ := http.NewRequest(http.MethodPost, w.daemon+path, strings.NewReader(body))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sign := func(body string) string {
		m := hmac.New(sha256.New, []byte(hmacSecret))
		m.Write([]byte(body))
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	for i, hook := range []struct {
		path    string
		headers func(body string) map[string]string
		body    string
	}{
		{"/hooks/git/github", func(b string) map[string]string {
			return map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(b)}
		}, `{"ref":"refs/heads/main","repository":{"ssh_url":"` + w.url + `"}}`},
		{"/hooks/git/gitlab", func(string) map[string]string {
			return map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "hook-token"}
		}, `{"ref":"refs/heads/main","project":{"git_ssh_url":"` + w.url + `"}}`},
		{"/hooks/git/gitea", func(b string) map[string]string { // Gitea signs in plain hex
			return map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": strings.TrimPrefix(sign(b), "sha256=")}
		}, `{"ref":"refs/heads/main","repository":{"ssh_url":"` + w.url + `"}}`},
	} {
		h, err := testenv.CommitFiles(w.repoPath, "main", map[string]string{"NOTES.md": fmt.Sprint("note ", i)}, "a human")
		if err != nil {
			t.Fatal(err)
		}
		if code := post(hook.path, hook.headers(hook.body), hook.body); code != http.StatusAccepted {
			t.Fatalf("%s: status %d", hook.path, code)
		}
		w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool { return st.Repositories[0].Revision == h.String() })
	}
	// A wrong signature or token, or a push to another branch, wakes nothing.
	body := `{"ref":"refs/heads/main","repository":{"ssh_url":"` + w.url + `"}}`
	if code := post("/hooks/git/github", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00"}, body); code != http.StatusUnauthorized {
		t.Errorf("bad signature: status %d", code)
	}
	if code := post("/hooks/git/gitlab", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}, body); code != http.StatusUnauthorized {
		t.Errorf("bad token: status %d", code)
	}
	if code := post("/hooks/git/gitea", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": "00"}, body); code != http.StatusUnauthorized {
		t.Errorf("bad Gitea signature: status %d", code)
	}
}

// TestConfigReload: a changed config restarts its repository's bot; a config that no longer
// loads keeps the running one and says why in the status.
func TestConfigReload(t *testing.T) {
	w := startWorldWith(t, func(o *daemon.Options) { o.ConfigPoll = 100 * time.Millisecond }, "")
	cfg, err := os.ReadFile(w.cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	// Point the repository at a branch that does not exist: the restarted bot reports it.
	replace := func(body []byte) { w.setConfig(t, string(body)) }
	replace([]byte(strings.Replace(string(cfg), "    interval: 1h\n", "    interval: 1h\n    branch: nope\n", 1)))
	w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool {
		return len(st.Repositories) == 1 && strings.Contains(st.Repositories[0].Error, "branch not found")
	})
	// A broken config keeps the last good one running.
	replace([]byte("apiVersion: imagebot.dev/v1alpha1\nkind: Repository\nspec: {gitt: {}}\n"))
	st := w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool { return st.ConfigError != "" })
	if !strings.Contains(st.ConfigError, `unknown field "gitt"`) || len(st.Repositories) != 1 {
		t.Errorf("status after a broken config: %+v", st)
	}
	// Back to the original: the bot runs on main again.
	replace(cfg)
	w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool {
		return st.ConfigError == "" && len(st.Repositories) == 1 && st.Repositories[0].Error == "" && st.Repositories[0].Revision != ""
	})
}

// TestSyncEndpoint: POST /api/v1/sync reconciles now (a human commit is picked up without
// waiting for the hour-long poll), and needs the token.
func TestSyncEndpoint(t *testing.T) {
	w := startWorld(t)
	h, err := testenv.CommitFiles(w.repoPath, "main", map[string]string{"NOTES.md": "x\n"}, "a human")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, w.daemon+"/api/v1/sync?repository=demo", nil)
	req.Header.Set("Authorization", "Bearer hook-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sts []bot.Status
	json.NewDecoder(resp.Body).Decode(&sts)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(sts) != 1 || sts[0].Revision != h.String() {
		t.Errorf("sync: %s %+v", resp.Status, sts)
	}
	resp, _ = http.Post(w.daemon+"/api/v1/sync", "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("sync without the token: %s", resp.Status)
	}
	resp.Body.Close()
	// Lifting the prune limit takes the API token, not the webhook token.
	for token, want := range map[string]int{"hook-token": http.StatusForbidden, apiToken: http.StatusOK} {
		req, _ := http.NewRequest(http.MethodPost, w.daemon+"/api/v1/sync?repository=demo&allowMassPrune=true", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("allowMassPrune with %s: %s, want %d", token, resp.Status, want)
		}
	}
	// Only for one named repository.
	req, _ = http.NewRequest(http.MethodPost, w.daemon+"/api/v1/sync?allowMassPrune=true", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("allowMassPrune for every repository: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// writeConfig writes a repository config named demo for the git server's repository url,
// watching only the test registry, with the given poll intervals and extra spec lines
// (indented by two spaces), and returns its path.
func writeConfig(t testing.TB, dir, url string, g *testenv.GitServer, gitInterval, scanInterval, extra string) string {
	t.Helper()
	path := filepath.Join(dir, "demo.yaml")
	cfg := fmt.Sprintf(`apiVersion: imagebot.dev/v1alpha1
kind: Repository
metadata:
  name: demo
spec:
  git:
    url: %s
    interval: %s
    auth:
      sshKeyFile: %s
      knownHostsFile: %s
  scan:
    interval: %s
  images:
    include: ["127.0.0.1:*"]
`, url, gitInterval, g.DeployKey, g.KnownHosts, scanInterval) + extra
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// BenchmarkPollToCommit measures tag push to commit with polling only (no webhook reaches
// the daemon: it serves none without a token) at a 2s scan interval; the goal is the
// interval (±10 % jitter) plus under 2s. It reports the median and the worst of b.N pushes,
// and the worst minus the longest jittered interval.
func BenchmarkPollToCommit(b *testing.B) {
	const interval = 2 * time.Second
	w := startWorldWith(b, func(o *daemon.Options) {
		o.WebhookToken, o.WebhookHMACSecret, o.ConfigPoll = "", nil, 100*time.Millisecond
	}, "")
	cfg := w.config(b)
	next := strings.Replace(cfg, "  scan:\n    interval: 1h\n", "  scan:\n    interval: 2s\n", 1)
	if next == cfg {
		b.Fatal("no scan interval to change in the config")
	}
	w.setConfig(b, next)
	time.Sleep(time.Second) // the restarted bot watches at the new interval
	lat := benchPushes(b, w)
	worst := lat[len(lat)-1]
	b.ReportMetric(float64((worst - interval*11/10).Milliseconds()), "max-over-interval-ms")
}

// benchPushes pushes a new tag per b.Loop and waits for its commit; it reports the median
// and the worst latency and returns them all, sorted.
func benchPushes(b *testing.B, w *world) []time.Duration {
	var lat []time.Duration
	n := 1
	for b.Loop() {
		lat = append(lat, w.pushAndWait(b, fmt.Sprintf("develop-v1.9.%d", n), w.t0.Add(time.Duration(n)*time.Hour)))
		n++
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
	return lat
}
