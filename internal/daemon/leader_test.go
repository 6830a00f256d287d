package daemon_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/testenv"
)

// TestLeaderElection: two replicas share a Lease; only the leader runs the repository (one
// commit per tag), and the other takes over when the leader stops.
func TestLeaderElection(t *testing.T) {
	env := testenv.New(t, testenv.Options{Cluster: true, Registry: true, GitServer: true})
	ctx := context.Background()
	t0 := time.Now().Add(-24 * time.Hour)
	if _, err := env.Registry.Push(ctx, "team/flaskapp", "develop-v1.8.0", testenv.ImageSpec{Created: t0}); err != nil {
		t.Fatal(err)
	}
	url, err := env.Git.CreateRepo("config", "main", map[string]string{"apps/flask.yaml": strings.ReplaceAll(seed, "REG", env.Registry.Host)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgFile := writeConfig(t, dir, url, env.Git, "1h", "1s", "")

	type replica struct {
		url    string
		cancel context.CancelFunc
		done   chan error
	}
	start := func(id string) *replica {
		addr := freeAddr(t)
		d, err := daemon.New(daemon.Options{ConfigPaths: []string{cfgFile}, DataDir: filepath.Join(dir, id), Listen: addr,
			LeaderElection: &daemon.LeaderElection{Config: env.Cluster.Config, Namespace: "default", Identity: id,
				LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &replica{url: "http://" + addr, cancel: cancel, done: make(chan error, 1)}
		go func() { r.done <- d.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-r.done })
		return r
	}
	ready := func(r *replica) bool {
		resp, err := http.Get(r.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	waitReady := func(r *replica, limit time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(limit); !ready(r); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready (leading) within %v", r.url, limit)
			}
		}
	}
	commits := func(tag string) int {
		log, err := testenv.Log(env.Git.RepoPath("config"), "main")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range log {
			if strings.HasPrefix(c.Message, "Update my-demo/fluxdemo flask to "+tag+"\n") {
				n++
			}
		}
		return n
	}
	pushAndWait := func(tag string, created time.Time) {
		t.Helper()
		if _, err := env.Registry.Push(ctx, "team/flaskapp", tag, testenv.ImageSpec{Created: created}); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); commits(tag) == 0; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not committed", tag)
			}
		}
		time.Sleep(2 * time.Second) // time for a second writer to make a duplicate, if there were one
		if n := commits(tag); n != 1 {
			t.Errorf("%s committed %d times", tag, n)
		}
	}

	a := start("a")
	waitReady(a, 20*time.Second)
	b := start("b")
	time.Sleep(time.Second)
	if ready(b) {
		t.Fatal("both replicas are ready (leading)")
	}
	pushAndWait("develop-v1.8.1", t0.Add(time.Hour))

	a.cancel() // the leader goes away (and releases the lease)
	if err := <-a.done; err != nil {
		t.Errorf("leader: %v", err)
	}
	a.done <- nil // for the cleanup
	waitReady(b, 15*time.Second)
	pushAndWait("develop-v1.8.2", t0.Add(2*time.Hour))
}
