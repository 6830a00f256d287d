package daemon_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/testenv"
)

// TestOneRepositoryDoesNotStallAnother: a second repository whose git server accepts
// connections and then says nothing (its fetches hang until their timeout) does not hold back
// the first: a tag pushed meanwhile is committed as usual, and the daemon still shuts down
// promptly (startWorld's cleanup fails the test otherwise): the hanging fetch ends with the
// daemon's context.
func TestOneRepositoryDoesNotStallAnother(t *testing.T) {
	hole := testenv.BlackHole(t)
	w := startWorldWith(t, func(o *daemon.Options) { o.ConfigPoll = 100 * time.Millisecond }, "")
	cfg := w.config(t)
	stuck := strings.NewReplacer("name: demo", "name: stuck", w.url, "ssh://git@"+hole+"/stuck.git",
		"    auth:\n", "    timeout: 10m\n    auth:\n").Replace(cfg)
	w.setConfig(t, cfg+"---\n"+stuck)
	w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool { return len(st.Repositories) == 2 })

	latency := w.pushAndWait(t, "develop-v1.8.1", w.t0.Add(time.Hour))
	t.Logf("tag pushed -> commit pushed, beside a hanging repository: %v", latency)
	for _, r := range w.status(t).Repositories {
		if r.Repository == "stuck" && r.Revision != "" {
			t.Errorf("the black-hole repository has a revision: %+v", r)
		}
	}
}

// TestRepositoryThatCannotStart: a repository whose deploy key is missing is reported in the
// status (and does not make the daemon unready for the others); once the key file appears,
// the next config poll starts it; a key rotated in place restarts it.
func TestRepositoryThatCannotStart(t *testing.T) {
	w := startWorldWith(t, func(o *daemon.Options) { o.ConfigPoll = 100 * time.Millisecond }, "")
	otherURL, err := w.env.Git.CreateRepo("other", "main", map[string]string{"README.md": "nothing to automate\n"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := w.config(t)
	key := filepath.Join(t.TempDir(), "later", "deploy_key")
	other := strings.NewReplacer("name: demo", "name: other", w.url, otherURL, w.env.Git.DeployKey, key).Replace(cfg)
	w.setConfig(t, cfg+"---\n"+other)
	st := w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool {
		for _, r := range st.Repositories {
			if r.Repository == "other" && strings.HasPrefix(r.Error, "cannot start: ") && strings.Contains(r.Error, key) {
				return true
			}
		}
		return false
	})
	t.Logf("status: %+v", st.Repositories)
	if resp, err := http.Get(w.daemon + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("readyz with one repository that cannot start: %v %v", resp, err)
	}
	// The key appears (a Secret mounted late): the repository starts.
	body, err := os.ReadFile(w.env.Git.DeployKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, body, 0o600); err != nil {
		t.Fatal(err)
	}
	var started time.Time
	w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool {
		for _, r := range st.Repositories {
			if r.Repository == "other" && !r.Started.IsZero() && r.Error == "" {
				started = r.Started
				return true
			}
		}
		return false
	})
	// The key is rotated in place (the config unchanged): the bot restarts with it (a new
	// first reconcile, long before the hour-long git poll).
	if err := os.WriteFile(key, append(body, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool {
		for _, r := range st.Repositories {
			if r.Repository == "other" && r.Started.After(started) && r.Error == "" {
				return true
			}
		}
		return false
	})
}

// TestHTTPSRepository: a repository reached over HTTPS with a user, a password file and a
// private CA (spec.git.auth.caFile) is fetched.
func TestHTTPSRepository(t *testing.T) {
	w := startWorldWith(t, func(o *daemon.Options) { o.ConfigPoll = 100 * time.Millisecond }, "")
	if _, err := w.env.Git.CreateRepo("other", "main", map[string]string{"README.md": "over https\n"}); err != nil {
		t.Fatal(err)
	}
	hs, err := w.env.Git.ServeHTTPS(testenv.GitHTTPOptions{Users: map[string]string{"bot": "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := fmt.Sprintf(`apiVersion: imagebot.dev/v1alpha1
kind: Repository
metadata:
  name: other
spec:
  git:
    url: %s
    interval: 1h
    auth: {username: bot, passwordFile: %s, caFile: %s}
`, hs.URL("other"), pw, hs.CAFile)
	w.setConfig(t, w.config(t)+"---\n"+other)
	head, err := testenv.Head(w.env.Git.RepoPath("other"), "main")
	if err != nil {
		t.Fatal(err)
	}
	w.waitStatus(t, 20*time.Second, func(st daemon.Status) bool {
		for _, r := range st.Repositories {
			if r.Repository == "other" && r.Revision == head.Hash.String() && r.Error == "" {
				return true
			}
		}
		return false
	})
}

// TestRegistrySettingsReload: changed registry settings reach the shared scanner without a
// restart; settings that cannot be used (a missing CA file) are reported and the running
// ones kept.
func TestRegistrySettingsReload(t *testing.T) {
	w := startWorldWith(t, func(o *daemon.Options) { o.ConfigPoll = 100 * time.Millisecond }, "")
	cfg := w.config(t)
	missing := filepath.Join(t.TempDir(), "missing-ca.pem")
	w.setConfig(t, cfg+"  registries:\n  - {host: \""+w.env.Registry.Host+"\", caFile: "+missing+"}\n")
	w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool { return strings.Contains(st.ConfigError, missing) })
	w.setConfig(t, cfg+"  registries:\n  - {host: \""+w.env.Registry.Host+"\", rps: 50, burst: 50}\n")
	w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool { return st.ConfigError == "" })
	// The new scanner scans: a pushed tag is committed.
	w.pushAndWait(t, "develop-v1.8.1", w.t0.Add(time.Hour))
}
