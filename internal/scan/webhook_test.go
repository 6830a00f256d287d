package scan_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

// recorder is a Triggerer that remembers what it was asked.
type recorder struct {
	mu      sync.Mutex
	repos   []string
	watched map[string]bool
	ch      chan string
}

func (r *recorder) Trigger(repo name.Repository) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.repos = append(r.repos, repo.Name())
	if r.ch != nil {
		r.ch <- repo.Name()
	}
	return r.watched == nil || r.watched[repo.Name()]
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.repos...)
}

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhookFormats(t *testing.T) {
	const token, secret = "tok-3f9a", "hmac-7c2e"
	cases := []struct {
		name     string
		format   scan.Format
		registry string
		body     string
		headers  map[string]string
		query    string
		want     []string // repositories triggered
	}{
		{name: "distribution push", format: scan.FormatDistribution, headers: map[string]string{"Authorization": "Bearer " + token},
			body: `{"events":[{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"team/app","tag":"v1","url":"http://registry.example.com:5000/v2/team/app/manifests/sha256:ab"},"request":{"host":"registry.example.com:5000"}},
				{"action":"pull","target":{"repository":"team/other","tag":"v1"}},
				{"action":"push","target":{"repository":"team/blobonly","url":"http://registry.example.com:5000/v2/team/blobonly/blobs/sha256:cd"}}]}`,
			want: []string{"registry.example.com:5000/team/app"}},
		{name: "distribution with registry override", format: scan.FormatDistribution, registry: "registry.example.com",
			headers: map[string]string{"X-Imagebot-Token": token},
			body:    `{"events":[{"action":"push","target":{"repository":"team/app","tag":"v1","url":"http://localhost:5000/v2/team/app/manifests/sha256:ab"}}]}`,
			want:    []string{"registry.example.com/team/app"}},
		{name: "docker hub", format: scan.FormatDockerHub, query: "?token=" + token,
			body: `{"callback_url":"https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/","push_data":{"pushed_at":1417566161,"pusher":"trustedbuilder","tag":"latest"},"repository":{"name":"testhook","namespace":"svendowideit","repo_name":"svendowideit/testhook","status":"Active"}}`,
			want: []string{"index.docker.io/svendowideit/testhook"}},
		{name: "docker hub official image", format: scan.FormatDockerHub, query: "?token=" + token,
			body: `{"push_data":{"tag":"1.27"},"repository":{"repo_name":"nginx"}}`,
			want: []string{"index.docker.io/library/nginx"}},
		{name: "harbor", format: scan.FormatHarbor, headers: map[string]string{"Authorization": "Bearer " + token},
			body: `{"type":"PUSH_ARTIFACT","occur_at":1680501893,"operator":"admin","event_data":{"resources":[{"digest":"sha256:954b","tag":"v1.2","resource_url":"harbor.example.com/library/app:v1.2"}],"repository":{"name":"app","namespace":"library","repo_full_name":"library/app","repo_type":"private"}}}`,
			want: []string{"harbor.example.com/library/app"}},
		{name: "harbor delete is ignored", format: scan.FormatHarbor, headers: map[string]string{"Authorization": "Bearer " + token},
			body: `{"type":"DELETE_ARTIFACT","event_data":{"resources":[{"resource_url":"harbor.example.com/library/app:v1.2"}]}}`},
		{name: "quay", format: scan.FormatQuay, query: "?token=" + token,
			body: `{"repository":"mynamespace/repository","namespace":"mynamespace","name":"repository","docker_url":"quay.io/mynamespace/repository","homepage":"https://quay.io/repository/mynamespace/repository","updated_tags":["latest"]}`,
			want: []string{"quay.io/mynamespace/repository"}},
		{name: "github package", format: scan.FormatGitHub, headers: map[string]string{"X-GitHub-Event": "package"},
			body: `{"action":"published","package":{"name":"app","namespace":"Octo-Org","package_type":"CONTAINER","owner":{"login":"Octo-Org"},"package_version":{"version":"sha256:3da4","container_metadata":{"tag":{"name":"v1","digest":"sha256:3da4"}},"package_url":"ghcr.io/octo-org/app:v1"}},"registry":{"url":"https://ghcr.io"}}`,
			want: []string{"ghcr.io/octo-org/app"}},
		// The "registry_package" event GitHub sends for a container pushed to ghcr.io (the
		// older name of "package"), with the repository and sender around it.
		{name: "github registry_package", format: scan.FormatGitHub, headers: map[string]string{"X-GitHub-Event": "registry_package"},
			body: `{"action":"published","registry_package":{"id":3512097,"name":"app","namespace":"Octo-Org","description":"",` +
				`"ecosystem":"CONTAINER","package_type":"CONTAINER","html_url":"https://github.com/orgs/Octo-Org/packages/container/package/app",` +
				`"created_at":"2024-05-01T12:00:00Z","updated_at":"2024-05-01T12:00:00Z","owner":{"login":"Octo-Org","id":21031067,"type":"Organization"},` +
				`"package_version":{"id":212718263,"version":"sha256:3da4b2c1","name":"sha256:3da4b2c1","summary":"","body":"",` +
				`"target_commitish":"main","target_oid":"a10867b","created_at":"2024-05-01T12:00:00Z","updated_at":"2024-05-01T12:00:00Z",` +
				`"metadata":[],"container_metadata":{"tag":{"name":"v1.2.0","digest":"sha256:3da4b2c1"},"labels":{"description":"","source":"https://github.com/Octo-Org/app","revision":"a10867b"},` +
				`"manifest":{"digest":"sha256:3da4b2c1","media_type":"application/vnd.oci.image.index.v1+json","uri":"repositories/octo-org/app/manifests/sha256:3da4b2c1","size":1609}},` +
				`"package_files":[],"installation_command":"docker pull ghcr.io/octo-org/app:v1.2.0","package_url":"ghcr.io/octo-org/app:v1.2.0"},` +
				`"registry":{"about_url":"https://docs.github.com/packages/learn-github-packages/introduction-to-github-packages","name":"GitHub CONTAINER registry","type":"CONTAINER","url":"https://ghcr.io/octo-org","vendor":"GitHub Inc"}},` +
				`"repository":{"id":1296269,"name":"app","full_name":"Octo-Org/app","private":true,"owner":{"login":"Octo-Org","type":"Organization"}},` +
				`"organization":{"login":"Octo-Org","id":21031067},"sender":{"login":"octocat","id":1,"type":"User"}}`,
			want: []string{"ghcr.io/octo-org/app"}},
		{name: "github registry_package without a package_url", format: scan.FormatGitHub, headers: map[string]string{"X-GitHub-Event": "registry_package"},
			body: `{"action":"updated","registry_package":{"name":"Worker","namespace":"","package_type":"container","owner":{"login":"Octo-Org"},` +
				`"package_version":{"version":"sha256:77aa","container_metadata":{"tag":{"name":"latest","digest":"sha256:77aa"}}}},"sender":{"login":"octocat"}}`,
			want: []string{"ghcr.io/octo-org/worker"}},
		{name: "github registry_package npm is ignored", format: scan.FormatGitHub, headers: map[string]string{"X-GitHub-Event": "registry_package"},
			body: `{"action":"published","registry_package":{"name":"lib","namespace":"octo-org","ecosystem":"npm","package_type":"npm","package_version":{"package_url":"npm.pkg.github.com/@octo-org/lib@1.0.0"}}}`},
		{name: "github npm package is ignored", format: scan.FormatGitHub, headers: map[string]string{"X-GitHub-Event": "package"},
			body: `{"action":"published","package":{"name":"lib","namespace":"octo-org","package_type":"npm"}}`},
		{name: "generic signed", format: scan.FormatGeneric,
			body: `{"image":"registry.example.com/team/app","tag":"v2"}`, want: []string{"registry.example.com/team/app"}},
		{name: "generic with a tag in the image", format: scan.FormatGeneric,
			body: `{"image":"localhost:5000/app:v2"}`, want: []string{"localhost:5000/app"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			opts := scan.WebhookOptions{Format: tc.format, Trigger: rec, Registry: tc.registry}
			if tc.format == scan.FormatGitHub || tc.format == scan.FormatGeneric {
				opts.HMACSecret = []byte(secret)
			} else {
				opts.Token = token
			}
			h, err := scan.NewWebhook(opts)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/hook"+tc.query, strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			if len(opts.HMACSecret) > 0 {
				hdr := "X-Signature-256"
				if tc.format == scan.FormatGitHub {
					hdr = "X-Hub-Signature-256"
				}
				req.Header.Set(hdr, sign(secret, tc.body))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusAccepted {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if got := rec.got(); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("triggered %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWebhookRefusesUnauthenticated(t *testing.T) {
	const body = `{"image":"registry.example.com/secret-project/app","tag":"v1"}`
	cases := []struct {
		name    string
		opts    scan.WebhookOptions
		headers map[string]string
		query   string
		want    int
	}{
		{"no token", scan.WebhookOptions{Token: "right"}, nil, "", 401},
		{"wrong token", scan.WebhookOptions{Token: "right"}, map[string]string{"Authorization": "Bearer guessed-value"}, "", 401},
		{"wrong query token", scan.WebhookOptions{Token: "right"}, nil, "?token=guessed-value", 401},
		{"no signature", scan.WebhookOptions{HMACSecret: []byte("k")}, nil, "", 401},
		{"wrong signature", scan.WebhookOptions{HMACSecret: []byte("k")}, map[string]string{"X-Signature-256": sign("other", body)}, "", 401},
		{"signature of another body", scan.WebhookOptions{HMACSecret: []byte("k")}, map[string]string{"X-Signature-256": sign("k", body+" ")}, "", 401},
		{"token right, signature missing", scan.WebhookOptions{Token: "right", HMACSecret: []byte("k")}, map[string]string{"X-Imagebot-Token": "right"}, "", 401},
		{"right token", scan.WebhookOptions{Token: "right"}, map[string]string{"Authorization": "bearer right"}, "", 202},
		{"right signature", scan.WebhookOptions{HMACSecret: []byte("k")}, map[string]string{"X-Hub-Signature-256": sign("k", body)}, "", 202},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			rec := &recorder{}
			tc.opts.Format, tc.opts.Trigger = scan.FormatGeneric, rec
			tc.opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			h, err := scan.NewWebhook(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/hook"+tc.query, strings.NewReader(body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d", w.Code, tc.want)
			}
			if tc.want == 401 {
				if len(rec.got()) != 0 {
					t.Error("an unauthenticated body triggered a scan")
				}
				if !strings.Contains(logs.String(), "webhook rejected") {
					t.Errorf("rejection not logged: %q", logs.String())
				}
				if strings.Contains(logs.String(), "secret-project") || strings.Contains(logs.String(), "guessed-value") {
					t.Errorf("the log shows the body or the token: %q", logs.String())
				}
			}
		})
	}
	for _, bad := range []scan.WebhookOptions{
		{Format: scan.FormatGeneric, Trigger: &recorder{}},
		{Format: "gitlab", Trigger: &recorder{}, Token: "x"},
		{Format: scan.FormatDockerHub, Trigger: &recorder{}, HMACSecret: []byte("x")},
	} {
		if _, err := scan.NewWebhook(bad); err == nil {
			t.Errorf("NewWebhook(%+v) accepted a webhook it cannot authenticate", bad)
		}
	}
}

// TestDistributionNotifications: Debian's docker-registry sends its notifications to the
// handler; a push triggers the scheduler, and the new tag reaches OnUpdate.
func TestDistributionNotifications(t *testing.T) {
	const token = "notify-token-81b2"
	rec := &recorder{ch: make(chan string, 100)}
	ups := newUpdates()
	sched := scan.NewScheduler(scan.New(scan.Options{}), scan.SchedulerOptions{Interval: time.Hour, OnUpdate: ups.on})
	hook, err := scan.NewWebhook(scan.WebhookOptions{Format: scan.FormatDistribution, Token: token,
		Trigger: &fanout{a: sched, b: rec}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	env := testenv.New(t, testenv.Options{Registry: true, RegistryOptions: testenv.RegistryOptions{
		NotifyURL: srv.URL, NotifyHeaders: map[string]string{"Authorization": "Bearer " + token}}})
	reg := env.Registry
	repo := repoOf(t, reg.Host, "team/app")
	if _, err := reg.Push(ctxT(t), "team/app", "v1", testenv.ImageSpec{Created: base}); err != nil {
		t.Fatal(err)
	}
	sched.Watch("w", scan.Watch{Repo: repo, Need: scan.Need{Match: func(string) bool { return true }, BuildTime: true}})
	sched.Start(ctxT(t))
	defer sched.Stop()
	if up := ups.wait(t, repo, 10*time.Second); up.Err != nil || len(up.Result.Tags) != 1 {
		t.Fatalf("first scan: %+v", up)
	}
	start := time.Now()
	if _, err := reg.Push(ctxT(t), "team/app", "v2", testenv.ImageSpec{Created: base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	pushed := time.Now()
	for { // the v1 push's notifications may trigger a scan first
		up := ups.wait(t, repo, 15*time.Second)
		if up.Err != nil || !up.Triggered {
			t.Fatalf("after the push: %+v", up)
		}
		if up.Result.Images["v2"].Created.Equal(base.Add(time.Hour)) {
			break
		}
	}
	t.Logf("push took %s; push done → new tag in OnUpdate: %s", pushed.Sub(start), time.Since(pushed))
	if got := rec.got(); len(got) == 0 || got[0] != repo.Name() {
		t.Errorf("notifications triggered %v", got)
	}
}

// fanout triggers two Triggerers.
type fanout struct{ a, b scan.Triggerer }

func (f *fanout) Trigger(r name.Repository) bool { f.b.Trigger(r); return f.a.Trigger(r) }
