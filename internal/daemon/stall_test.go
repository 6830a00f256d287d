package daemon_test

import (
	"os"
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
	cfg, err := os.ReadFile(w.cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	stuck := strings.NewReplacer("name: demo", "name: stuck", w.url, "ssh://git@"+hole+"/stuck.git",
		"    auth:\n", "    timeout: 10m\n    auth:\n").Replace(string(cfg))
	tmp := w.cfgFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(string(cfg)+"---\n"+stuck), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, w.cfgFile); err != nil {
		t.Fatal(err)
	}
	w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool { return len(st.Repositories) == 2 })

	latency := w.pushAndWait(t, "develop-v1.8.1", w.t0.Add(time.Hour))
	t.Logf("tag pushed -> commit pushed, beside a hanging repository: %v", latency)
	for _, r := range w.status(t).Repositories {
		if r.Repository == "stuck" && r.Revision != "" {
			t.Errorf("the black-hole repository has a revision: %+v", r)
		}
	}
}
