package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/daemon"
)

// The CLI's side of the daemon's API, against a stand-in serving the daemon's JSON types
// (the daemon's side is tested in internal/daemon).
func TestListImagesAndSync(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/status":
			json.NewEncoder(w).Encode(daemon.Status{
				Repositories: []bot.Status{{Repository: "demo", Targets: []bot.TargetStatus{{Workload: "Deployment/my-demo/fluxdemo",
					Container: "flask", Image: "r.example.com/app:1.0", Best: "1.0", Reason: "the current tag ranks highest"}}}},
				Images: []daemon.ImageStatus{{Repository: "r.example.com/app", Tags: 12, LastScan: time.Now()}},
			})
		case "/api/v1/sync":
			gotAuth = r.Header.Get("Authorization")
			json.NewEncoder(w).Encode([]bot.Status{{Repository: "demo", Revision: "0123456789abcdef0123", Pushed: "fedcba9876543210"}})
		}
	}))
	defer srv.Close()
	out := run(t, "list-images", "--daemon", srv.URL)
	for _, want := range []string{"demo        Deployment/my-demo/fluxdemo  flask      r.example.com/app:1.0  1.0   the current tag ranks highest", "r.example.com/app  12"} {
		if !strings.Contains(out, want) {
			t.Errorf("list-images lacks %q:\n%s", want, out)
		}
	}
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("s3cret\n"), 0o600)
	out = run(t, "sync", "--daemon", srv.URL, "--token-file", token)
	if gotAuth != "Bearer s3cret" || !strings.Contains(out, "demo: at 0123456789ab") || !strings.Contains(out, "pushed fedcba987654") {
		t.Errorf("sync: auth %q, output %q", gotAuth, out)
	}
}

// TestSyncWaitsForRollouts: after the reconcile, sync waits for the applied commit's sync to
// leave Reconciling: Ready is success, Stalled an error naming why, a rollout that does not
// finish within --wait an error too.
func TestSyncWaitsForRollouts(t *testing.T) {
	for _, c := range []struct {
		name, final string
		wait        string
		wantOut     string
		wantCode    int
	}{
		{"ready", "Ready", "30s", "demo: 0123456789ab rolled out", 0},
		{"stalled", "Stalled", "30s", "demo: 0123456789ab stalled: health check timed out", exitError},
		{"too slow", "Reconciling", "1s", "demo: 0123456789ab still rolling out after 1s", exitError},
	} {
		t.Run(c.name, func(t *testing.T) {
			var polls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/api/v1/sync":
					json.NewEncoder(w).Encode([]bot.Status{{Repository: "demo", Revision: "0123456789abcdef", Synced: "0123456789abcdef"}})
				case "/api/v1/status":
					st := daemon.SyncStatus{Repository: "demo", Revision: "0123456789abcdef", Status: "Reconciling"}
					if polls.Add(1) > 2 { // rolling out for two polls
						st.Status = c.final
						if c.final == "Stalled" {
							st.Message = "health check timed out"
						}
					}
					json.NewEncoder(w).Encode(daemon.Status{Syncs: []daemon.SyncStatus{st}})
				}
			}))
			defer srv.Close()
			token := filepath.Join(t.TempDir(), "token")
			os.WriteFile(token, []byte("s3cret\n"), 0o600)
			out, code := runCode("sync", "--daemon", srv.URL, "--token-file", token, "--wait", c.wait)
			if code != c.wantCode || !strings.Contains(out, c.wantOut) {
				t.Errorf("exit %d, want %d; output:\n%s", code, c.wantCode, out)
			}
			if polls.Load() < 3 {
				t.Errorf("polled the status %d times", polls.Load())
			}
		})
	}
}
