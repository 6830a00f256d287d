package bot_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

const seedTemplate = `---
apiVersion: v1
kind: Namespace
metadata:
  name: my-demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fluxdemo
  namespace: my-demo
  annotations:
    flux.weave.works/automated: 'true'
    flux.weave.works/tag.flask: glob:develop-v*
    flux.weave.works/tag.nginx: semver:~1.16
spec:
  template:
    spec:
      containers:
      - name: nginx
        image: REG/library/nginx:1.16.0
      - name: flask
        image: REG/team/flaskapp:develop-v1.8.0   # the app
`

// recordingSyncer is the edge the cluster would be: it records what it was asked to apply.
type recordingSyncer struct {
	mu        sync.Mutex
	revisions []string
}

func (s *recordingSyncer) Sync(_ context.Context, _, revision string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revisions = append(s.revisions, revision)
	return nil
}

// TestLoop runs the user's day against a real registry and a real git server: the first
// scan, an update, a newer tag announced (as a webhook does), a human revert that is not
// fought, and a newer tag after the revert.
func TestLoop(t *testing.T) {
	env := testenv.New(t, testenv.Options{Registry: true, GitServer: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := env.Registry.Host
	t0 := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	push := func(repo, tag string, created time.Time) {
		t.Helper()
		if _, err := env.Registry.Push(ctx, repo, tag, testenv.ImageSpec{Created: created}); err != nil {
			t.Fatal(err)
		}
	}
	push("team/flaskapp", "develop-v1.8.0", t0)
	push("team/flaskapp", "develop-v1.8.1", t0.Add(time.Hour))
	push("team/flaskapp", "master-abc", t0.Add(2*time.Hour)) // newer, but not develop-v*
	push("library/nginx", "1.16.0", t0)
	push("library/nginx", "1.17.0", t0.Add(time.Hour)) // outside ~1.16

	seed := strings.ReplaceAll(seedTemplate, "REG", reg)
	url, err := env.Git.CreateRepo("config", "main", map[string]string{"apps/flask.yaml": seed})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := git.SSHAuth{User: env.Git.User, KeyFile: env.Git.DeployKey, KnownHosts: env.Git.KnownHosts}.Method()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := git.Open(ctx, git.Options{URL: url, Dir: t.TempDir(), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	scanned := make(chan string, 100)
	sched := scan.NewScheduler(scan.New(scan.Options{}), scan.SchedulerOptions{Interval: time.Hour,
		OnUpdate: func(u scan.Update) {
			if u.Err == nil {
				scanned <- u.Repo.RepositoryStr()
			}
		}})
	sched.Start(ctx)
	defer sched.Stop()
	syncer := &recordingSyncer{}
	b := bot.New(bot.Options{Name: "demo", Repo: repo, Scheduler: sched, Syncer: syncer})

	seen := map[string]int{} // scans received, by repository
	waitScan := func(repo string) {
		t.Helper()
		for {
			if seen[repo] > 0 {
				seen[repo]--
				return
			}
			select {
			case r := <-scanned:
				seen[r]++
			case <-ctx.Done():
				t.Fatalf("no scan of %s", repo)
			}
		}
	}
	reconcile := func() *bot.Status {
		t.Helper()
		st, err := b.ReconcileOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	file := func() string {
		got, err := testenv.ReadFile(env.Git.RepoPath("config"), "main", "apps/flask.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	// First cycle: the targets are found and watched; no scan yet, so nothing changes.
	st := reconcile()
	if st.Pushed != "" || len(st.Targets) != 2 || !strings.Contains(st.Targets[0].Reason, "waiting for the first scan") {
		t.Fatalf("first cycle: %+v", st)
	}
	waitScan("team/flaskapp")
	waitScan("library/nginx")

	// Second cycle: flask moves to develop-v1.8.1; nginx stays (1.17.0 is outside ~1.16).
	st = reconcile()
	if st.Pushed == "" {
		t.Fatalf("second cycle pushed nothing: %+v", st)
	}
	want := strings.Replace(seed, "flaskapp:develop-v1.8.0", "flaskapp:develop-v1.8.1", 1)
	if got := file(); got != want {
		t.Fatalf("after the update:\n%s\nwant:\n%s", got, want)
	}
	head, _ := testenv.Head(env.Git.RepoPath("config"), "main")
	if !strings.HasPrefix(head.Message, "Update my-demo/fluxdemo flask to develop-v1.8.1\n") {
		t.Errorf("commit message: %q", head.Message)
	}
	if syncer.revisions[len(syncer.revisions)-1] != st.Pushed {
		t.Errorf("synced %v, want the pushed %s last", syncer.revisions, st.Pushed)
	}
	// Nothing new: no commit.
	if st = reconcile(); st.Pushed != "" {
		t.Fatalf("a cycle with nothing new pushed %s", st.Pushed)
	}

	// A newer tag, announced (as the registry's webhook does through the scheduler).
	push("team/flaskapp", "develop-v1.8.2", t0.Add(3*time.Hour))
	flask, _ := name.NewRepository(reg + "/team/flaskapp")
	sched.Trigger(flask)
	waitScan("team/flaskapp")
	if st = reconcile(); st.Pushed == "" || !strings.Contains(file(), "flaskapp:develop-v1.8.2") {
		t.Fatalf("the announced tag was not applied: %+v", st)
	}

	// A human reverts to develop-v1.8.1: the bot does not fight it.
	if _, err := testenv.CommitFiles(env.Git.RepoPath("config"), "main", map[string]string{"apps/flask.yaml": want}, "Revert flask to develop-v1.8.1"); err != nil {
		t.Fatal(err)
	}
	st = reconcile()
	if st.Pushed != "" || !strings.Contains(file(), "flaskapp:develop-v1.8.1") {
		t.Fatalf("the bot fought the revert: %+v", st)
	}
	var flaskStatus bot.TargetStatus
	for _, ts := range st.Targets {
		if ts.Container == "flask" {
			flaskStatus = ts
		}
	}
	if !strings.Contains(flaskStatus.Reason, "reverted in git") || flaskStatus.Best != "develop-v1.8.2" {
		t.Errorf("status after the revert: %+v", flaskStatus)
	}
	// What the policy made of each tag: the one it picks, the one git holds, the rest.
	if fmt.Sprint(flaskStatus.Tags) != "[{develop-v1.8.2 chosen} {develop-v1.8.1 current} {develop-v1.8.0 ranks lower}]" || flaskStatus.Filtered != 1 {
		t.Errorf("tag notes after the revert: %v, %d filtered", flaskStatus.Tags, flaskStatus.Filtered)
	}

	// A newer tag after the revert goes through.
	push("team/flaskapp", "develop-v1.8.3", t0.Add(4*time.Hour))
	sched.Trigger(flask)
	waitScan("team/flaskapp")
	if st = reconcile(); st.Pushed == "" || !strings.Contains(file(), "flaskapp:develop-v1.8.3") {
		t.Fatalf("the tag after the revert was not applied: %+v", st)
	}
	log, _ := testenv.Log(env.Git.RepoPath("config"), "main")
	if len(log) != 5 { // seed, 1.8.1, 1.8.2, revert, 1.8.3
		t.Errorf("%d commits, want 5", len(log))
	}
}
