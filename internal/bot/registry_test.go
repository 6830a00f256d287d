package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

const appTemplate = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: my-demo
  annotations:
    flux.weave.works/automated: 'true'
    flux.weave.works/tag.app: POLICY
spec:
  template:
    spec:
      containers:
      - name: app
        image: IMAGE   # the app
`

// world is a registry (the distribution server), a git server holding apps/app.yaml, a
// scheduler and a bot over them.
type world struct {
	t     *testing.T
	ctx   context.Context
	env   *testenv.Env
	reg   string
	repo  *git.Repo
	sched *scan.Scheduler
	bot   *bot.Bot
	app   name.Repository

	scanned chan struct{}
}

func newWorld(t *testing.T, ctx context.Context, push func(w *world)) *world {
	env := testenv.New(t, testenv.Options{Registry: true, GitServer: true})
	w := &world{t: t, ctx: ctx, env: env, reg: env.Registry.Host, scanned: make(chan struct{}, 100)}
	w.app, _ = name.NewRepository(w.reg + "/team/app")
	push(w)
	return w
}

func (w *world) push(tag string, created time.Time) v1.Hash {
	w.t.Helper()
	h, err := w.env.Registry.Push(w.ctx, "team/app", tag, testenv.ImageSpec{Created: created})
	if err != nil {
		w.t.Fatal(err)
	}
	return h
}

// start commits the manifest (image and policy) and starts the scheduler and a bot.
func (w *world) start(image, policy string) string {
	t := w.t
	t.Helper()
	seed := strings.NewReplacer("IMAGE", w.reg+"/team/app:"+image, "POLICY", policy).Replace(appTemplate)
	url, err := w.env.Git.CreateRepo("config", "main", map[string]string{"apps/app.yaml": seed})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := git.SSHAuth{User: w.env.Git.User, KeyFile: w.env.Git.DeployKey, KnownHosts: w.env.Git.KnownHosts}.Method()
	if err != nil {
		t.Fatal(err)
	}
	if w.repo, err = git.Open(w.ctx, git.Options{URL: url, Dir: t.TempDir(), Auth: auth}); err != nil {
		t.Fatal(err)
	}
	w.sched = scan.NewScheduler(scan.New(scan.Options{}), scan.SchedulerOptions{Interval: time.Hour,
		OnUpdate: func(u scan.Update) {
			if u.Err == nil && u.Repo.RepositoryStr() == "team/app" {
				w.scanned <- struct{}{}
			}
		}})
	w.sched.Start(w.ctx)
	t.Cleanup(w.sched.Stop)
	w.bot = w.newBot()
	// The first cycle finds the target and watches its image; the next has its scan.
	if st := w.reconcile(); st.Pushed != "" {
		t.Fatalf("first cycle pushed %s", st.Pushed)
	}
	w.waitScan()
	return seed
}

func (w *world) newBot() *bot.Bot {
	return bot.New(bot.Options{Name: "demo", Repo: w.repo, Scheduler: w.sched})
}

func (w *world) waitScan() {
	w.t.Helper()
	select {
	case <-w.scanned:
	case <-w.ctx.Done():
		w.t.Fatal("no scan of team/app")
	}
}

// rescan triggers a scan of the app (as a registry webhook does) and waits for it.
func (w *world) rescan() {
	w.t.Helper()
	for len(w.scanned) > 0 {
		<-w.scanned
	}
	w.sched.Trigger(w.app)
	w.waitScan()
}

func (w *world) reconcile() *bot.Status { return w.reconcileWith(w.bot) }

func (w *world) reconcileWith(b *bot.Bot) *bot.Status {
	w.t.Helper()
	st, err := b.ReconcileOnce(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

func (w *world) file() string {
	w.t.Helper()
	got, err := testenv.ReadFile(w.env.Git.RepoPath("config"), "main", "apps/app.yaml")
	if err != nil {
		w.t.Fatal(err)
	}
	return got
}

func (w *world) commits() int {
	w.t.Helper()
	log, err := testenv.Log(w.env.Git.RepoPath("config"), "main")
	if err != nil {
		w.t.Fatal(err)
	}
	return len(log)
}

func reason(st *bot.Status) string {
	if len(st.Targets) != 1 {
		return ""
	}
	return st.Targets[0].Reason
}

// TestDeletedTagNoDowngrade: the bot deploys v2, v2 is deleted from the registry, and no
// commit moves the workload back to the older v1, whether the bot remembers v2's build time
// (the bot that deployed it) or not (a new bot, as after a restart); a newer tag still goes
// through.
func TestDeletedTagNoDowngrade(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	var v2 v1.Hash
	w := newWorld(t, ctx, func(w *world) {
		w.push("v1", t0)
		v2 = w.push("v2", t0.Add(time.Hour))
	})
	seed := w.start("v1", "glob:v*")

	st := w.reconcile()
	onV2 := strings.Replace(seed, "team/app:v1", "team/app:v2", 1)
	if st.Pushed == "" || w.file() != onV2 {
		t.Fatalf("v2 was not deployed: %+v\n%s", st, w.file())
	}

	// v2 is deleted from the registry (by digest: the distribution registry untags it).
	ref, err := name.NewDigest(w.reg+"/team/app@"+v2.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref, remote.WithContext(ctx), remote.WithAuth(w.env.Registry.Auth())); err != nil {
		t.Fatal(err)
	}
	w.rescan()
	if res, ok := w.sched.Latest(w.app, ""); !ok || strings.Join(res.Tags, ",") != "v1" {
		t.Fatalf("after deleting v2 the registry lists %v", res.Tags)
	}
	commits := w.commits()

	// The bot that deployed v2 remembers its build time: v1 ranks below it.
	st = w.reconcile()
	if st.Pushed != "" || w.file() != onV2 || !strings.Contains(reason(st), "remembered from an earlier scan") {
		t.Fatalf("with v2 remembered: pushed %q, reason %q\n%s", st.Pushed, reason(st), w.file())
	}
	// A bot that never saw v2 does not know its build time: it keeps v2 and says why.
	fresh := w.newBot()
	st = w.reconcileWith(fresh)
	if st.Pushed != "" || w.file() != onV2 || !strings.Contains(reason(st), "gone from the registry and its build time is unknown") {
		t.Fatalf("with v2 unknown: pushed %q, reason %q\n%s", st.Pushed, reason(st), w.file())
	}
	if n := w.commits(); n != commits {
		t.Fatalf("%d commits after v2 was deleted, want %d", n, commits)
	}

	// A newer tag still goes through.
	w.push("v3", t0.Add(2*time.Hour))
	w.rescan()
	if st = w.reconcile(); st.Pushed == "" || w.file() != strings.Replace(seed, "team/app:v1", "team/app:v3", 1) {
		t.Fatalf("v3 was not deployed: %+v\n%s", st, w.file())
	}
}

// TestPinnedDigestMoved: a workload pins app:1.0@A; 1.0 is pushed again (digest B); the next
// scan sees it (the tag is tracked, not left to the daily digest recheck) and the commit
// rewrites the digest, and nothing else.
func TestPinnedDigestMoved(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	var a v1.Hash
	w := newWorld(t, ctx, func(w *world) { a = w.push("1.0", t0) })
	seed := w.start("1.0@"+a.String(), "semver:~1.0")
	if st := w.reconcile(); st.Pushed != "" {
		t.Fatalf("pushed %s with the digest unchanged: %s", st.Pushed, reason(st))
	}

	b := w.push("1.0", t0.Add(time.Hour))
	if b == a {
		t.Fatal("the second push has the same digest")
	}
	w.rescan()
	st := w.reconcile()
	want := strings.Replace(seed, a.String(), b.String(), 1)
	if st.Pushed == "" || w.file() != want {
		t.Fatalf("the new digest was not written: %+v\n%s\nwant:\n%s", st, w.file(), want)
	}
	head, err := testenv.Head(w.env.Git.RepoPath("config"), "main")
	if err != nil {
		t.Fatal(err)
	}
	if subject := "Update my-demo/app app to 1.0@" + b.String() + "\n"; !strings.HasPrefix(head.Message, subject) {
		t.Errorf("commit message %q, want the subject %q", head.Message, subject)
	}
	if !strings.Contains(head.Message, "app:1.0@"+a.String()+" -> "+w.reg+"/team/app:1.0@"+b.String()) {
		t.Errorf("commit message %q does not show the old and new digests", head.Message)
	}
	if st = w.reconcile(); st.Pushed != "" {
		t.Fatalf("pushed again: %s", st.Pushed)
	}
}
