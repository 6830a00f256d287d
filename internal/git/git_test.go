package git_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/testenv"
	"imagebot.dev/imagebot/internal/update"
)

// world is a git server with one repository, and how imagebot reaches it.
type world struct {
	srv  *testenv.GitServer
	url  string
	path string // the bare repository on the server
	auth git.SSHAuth
}

func newWorld(t *testing.T, files map[string]string) *world {
	t.Helper()
	env := testenv.New(t, testenv.Options{GitServer: true})
	url, err := env.Git.CreateRepo("config", "main", files)
	if err != nil {
		t.Fatal(err)
	}
	return &world{srv: env.Git, url: url, path: env.Git.RepoPath("config"),
		auth: git.SSHAuth{User: env.Git.User, KeyFile: env.Git.DeployKey, KnownHosts: env.Git.KnownHosts}}
}

// open opens a Repo for the world's repository in dir; t may be nil (benchmarks), then
// errors panic.
func (w *world) open(t testing.TB, dir string, mod func(*git.Options)) *git.Repo {
	if t == nil {
		t = panicTB{}
	}
	t.Helper()
	auth, err := w.auth.Method()
	if err != nil {
		t.Fatal(err)
	}
	opts := git.Options{URL: w.url, Branch: "main", Dir: dir, Auth: auth}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := git.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type panicTB struct{ testing.TB }

func (panicTB) Helper()           {}
func (panicTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

func seed(t *testing.T) map[string]string {
	b, err := os.ReadFile("testdata/fluxdemo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"apps/flask.yaml": string(b), "README.md": "demo\n"}
}

// setImage returns an edit that sets the image of container in every workload, through the
// update package as the daemon does.
func setImage(container, image string) git.EditFunc {
	return func(ctx context.Context, dir string) (*update.ChangeSet, error) {
		var f update.Finder
		found, err := f.Find(ctx, dir)
		if err != nil {
			return nil, err
		}
		ref, err := name.ParseReference(image)
		if err != nil {
			return nil, err
		}
		var ds []update.Decision
		for _, tg := range found.Targets {
			if tg.Container == container && tg.Image != image {
				ds = append(ds, update.Decision{Target: tg, Image: ref})
			}
		}
		return f.Apply(ctx, dir, ds)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestUpdateCommitsPushesAndNeverCommitsNothing(t *testing.T) {
	w := newWorld(t, seed(t))
	var pushed []git.Pushed
	r := w.open(t, t.TempDir(), func(o *git.Options) { o.AfterPush = func(p git.Pushed) { pushed = append(pushed, p) } })
	res, err := r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit.IsZero() || res.Attempts != 1 {
		t.Fatalf("result %+v: want one attempt and a commit", res)
	}
	head, err := testenv.Head(w.path, "main")
	if err != nil {
		t.Fatal(err)
	}
	if head.Hash != res.Commit || len(pushed) != 1 || pushed[0].Commit != res.Commit {
		t.Fatalf("remote head %s, pushed %v, result %s", head.Hash, pushed, res.Commit)
	}
	subject, body, _ := strings.Cut(head.Message, "\n")
	if subject != "Update my-demo/fluxdemo flask to develop-v1.8.1" {
		t.Errorf("subject = %q", subject)
	}
	if !strings.Contains(body, "apps/flask.yaml:28 my-demo/fluxdemo flask: registry.example.com/team/flaskapp:develop-v1.8.0 -> registry.example.com/team/flaskapp:develop-v1.8.1 (glob:develop-v*)") {
		t.Errorf("body lacks the change:\n%s", body)
	}
	if head.Author.Name != "imagebot" {
		t.Errorf("author = %v", head.Author)
	}
	// Only the tag's bytes changed.
	got, err := testenv.ReadFile(w.path, "main", "apps/flask.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(seed(t)["apps/flask.yaml"], "develop-v1.8.0", "develop-v1.8.1", 1)
	if got != want {
		t.Errorf("pushed file:\n%s\nwant:\n%s", got, want)
	}
	// The same update again changes nothing: no commit.
	res, err = r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Commit.IsZero() || !res.Changes.Empty() {
		t.Fatalf("second update committed %s: %v", res.Commit, res.Changes)
	}
	if log, _ := testenv.Log(w.path, "main"); len(log) != 2 {
		t.Errorf("remote has %d commits, want 2", len(log))
	}
}

func TestMessageOptionsAndTemplate(t *testing.T) {
	w := newWorld(t, seed(t))
	auth, _ := w.auth.Method()
	_, err := git.Open(ctxT(t), git.Options{URL: w.url, Dir: t.TempDir(), Auth: auth, MessageTemplate: "{{ nosuchfunc }}"})
	if err == nil || !strings.Contains(err.Error(), "commit message template") {
		t.Fatalf("bad template: err = %v", err)
	}
	r := w.open(t, t.TempDir(), func(o *git.Options) {
		o.CISkip, o.SignOff = true, true
		o.Author = git.Signature{Name: "Bot", Email: "bot@example.com"}
		o.MessageTemplate = "chore: {{ len .Changes }} change in {{ index .Files 0 }} ({{ tag (index .Changes 0).New }})"
	})
	if _, err := r.Update(ctxT(t), setImage("nginx", "nginx:1.17")); err != nil {
		t.Fatal(err)
	}
	head, _ := testenv.Head(w.path, "main")
	want := "chore: 1 change in apps/flask.yaml (1.17) [ci skip]\n\nSigned-off-by: Bot <bot@example.com>\n"
	if head.Message != want || head.Author.Email != "bot@example.com" || head.Committer.Email != "bot@example.com" {
		t.Errorf("message %q by %v / %v, want %q", head.Message, head.Author, head.Committer, want)
	}
	// The comment after the nginx image survived.
	got, _ := testenv.ReadFile(w.path, "main", "apps/flask.yaml")
	if !strings.Contains(got, "image: nginx:1.17   # the front end\n") {
		t.Errorf("edited file:\n%s", got)
	}
}

// replaceEdit replaces old by new in file and reports it as one change.
func replaceEdit(file, container, old, new string) git.EditFunc {
	return func(ctx context.Context, dir string) (*update.ChangeSet, error) {
		p := filepath.Join(dir, file)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if !strings.Contains(string(b), old) {
			return &update.ChangeSet{}, nil
		}
		if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
			return nil, err
		}
		return &update.ChangeSet{Changes: []update.Change{{File: file, Container: container, Old: old, New: new,
			Workload: update.Workload{Kind: "Deployment", Namespace: "default", Name: container}}}}, nil
	}
}

// TestConcurrentWriters: two imagebot writers and a human push to one branch at once. Every
// update lands exactly once; none is lost; the update both writers want is committed once.
func TestConcurrentWriters(t *testing.T) {
	files := map[string]string{}
	for _, f := range []string{"a", "b", "c"} {
		files[f+".yaml"] = "image: " + f + ":1\n"
	}
	w := newWorld(t, files)
	writers := []*git.Repo{w.open(t, t.TempDir(), nil), w.open(t, t.TempDir(), nil)}
	const rounds = 3
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i, r := range writers {
		own := []string{"a", "b"}[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; n <= rounds; n++ {
				// Each writer moves its own file, and both want the shared file at n.
				for _, edit := range []git.EditFunc{
					replaceEdit(own+".yaml", own, fmt.Sprintf("%s:%d", own, n), fmt.Sprintf("%s:%d", own, n+1)),
					replaceEdit("c.yaml", "c", fmt.Sprintf("c:%d", n), fmt.Sprintf("c:%d", n+1)),
				} {
					if _, err := r.Update(ctxT(t), edit); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the human
		defer wg.Done()
		for n := range rounds {
			if _, err := testenv.CommitFiles(w.path, "main", map[string]string{fmt.Sprintf("human-%d.txt", n): "hi\n"}, fmt.Sprintf("human %d", n)); err != nil {
				errs <- err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for f, want := range map[string]string{"a.yaml": "image: a:4\n", "b.yaml": "image: b:4\n", "c.yaml": "image: c:4\n", "human-2.txt": "hi\n"} {
		if got, err := testenv.ReadFile(w.path, "main", f); got != want {
			t.Errorf("%s = %q (%v), want %q", f, got, err, want)
		}
	}
	log, err := testenv.Log(w.path, "main")
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]int{}
	for _, c := range log {
		subjects[strings.SplitN(c.Message, "\n", 2)[0]]++
	}
	for _, f := range []string{"a", "b", "c"} {
		for n := 2; n <= rounds+1; n++ {
			s := fmt.Sprintf("Update default/%s %s to %d", f, f, n)
			if subjects[s] != 1 {
				t.Errorf("%q committed %d times, want once", s, subjects[s])
			}
		}
	}
	if len(log) != 1+3*rounds+rounds {
		t.Errorf("%d commits, want %d: %v", len(log), 1+4*rounds, subjects)
	}
}

func TestAuthFailuresAreClear(t *testing.T) {
	w := newWorld(t, seed(t))
	dir := t.TempDir()
	// A deploy key the server does not know: refused, naming the key's fingerprint.
	key := filepath.Join(dir, "other_key")
	if _, err := git.GenerateKey(key, git.KeyECDSA, "other"); err != nil {
		t.Fatal(err)
	}
	_, fp, err := git.PublicKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	bad := w.auth
	bad.KeyFile = key
	auth, err := bad.Method()
	if err != nil {
		t.Fatal(err)
	}
	r, err := git.Open(ctxT(t), git.Options{URL: w.url, Dir: filepath.Join(dir, "a"), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Fetch(ctxT(t))
	if !errors.Is(err, git.ErrAuth) || !strings.Contains(err.Error(), fp) || !strings.HasPrefix(fp, "SHA256:") {
		t.Errorf("wrong key: err = %v, want ErrAuth naming %s", err, fp)
	}
	// An unknown host key: refused.
	empty := filepath.Join(dir, "known_hosts_empty")
	os.WriteFile(empty, nil, 0o644)
	unknown := w.auth
	unknown.KnownHosts = empty
	auth, _ = unknown.Method()
	r, _ = git.Open(ctxT(t), git.Options{URL: w.url, Dir: filepath.Join(dir, "b"), Auth: auth})
	if _, err := r.Fetch(ctxT(t)); !errors.Is(err, git.ErrHostKey) || !strings.Contains(err.Error(), "is not in") {
		t.Errorf("unknown host: err = %v", err)
	}
	// A changed host key: known_hosts pins another key for this address.
	other := filepath.Join(dir, "known_hosts_other")
	hostKey := filepath.Join(dir, "fake_host")
	pub, _ := git.GenerateKey(hostKey, git.KeyEd25519, "")
	host := "[" + strings.Replace(w.srv.Addr, ":", "]:", 1)
	os.WriteFile(other, []byte(host+" "+pub+"\n"), 0o644)
	changed := w.auth
	changed.KnownHosts = other
	auth, _ = changed.Method()
	r, _ = git.Open(ctxT(t), git.Options{URL: w.url, Dir: filepath.Join(dir, "c"), Auth: auth})
	if _, err := r.Fetch(ctxT(t)); !errors.Is(err, git.ErrHostKey) || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("changed host key: err = %v", err)
	}
	// No known_hosts at all is refused up front, unless explicitly opted out.
	none := w.auth
	none.KnownHosts = ""
	if _, err := none.Method(); err == nil {
		t.Error("ssh auth without known_hosts was accepted")
	}
	none.InsecureIgnoreHostKey = true
	if _, err := none.Method(); err != nil {
		t.Errorf("explicit opt-out refused: %v", err)
	}
}

func TestMissingRepositoryAndBranch(t *testing.T) {
	w := newWorld(t, seed(t))
	auth, _ := w.auth.Method()
	r, _ := git.Open(ctxT(t), git.Options{URL: w.url, Branch: "nope", Dir: t.TempDir(), Auth: auth})
	if _, err := r.Fetch(ctxT(t)); !errors.Is(err, git.ErrBranchNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing branch: err = %v", err)
	}
	missing := strings.Replace(w.url, "config.git", "missing.git", 1)
	r, _ = git.Open(ctxT(t), git.Options{URL: missing, Dir: t.TempDir(), Auth: auth})
	if _, err := r.Fetch(ctxT(t)); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing repository: err = %v", err)
	}
}

func TestCorruptMirrorIsRecloned(t *testing.T) {
	w := newWorld(t, seed(t))
	dir := t.TempDir()
	r := w.open(t, dir, nil)
	if _, err := r.Checkout(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Wreck the object store.
	if err := os.RemoveAll(filepath.Join(dir, "mirror", "objects")); err != nil {
		t.Fatal(err)
	}
	r = w.open(t, dir, nil)
	if warn := r.Warnings(); len(warn) != 1 || !strings.Contains(warn[0], "cloning again") {
		t.Errorf("warnings = %v", warn)
	}
	res, err := r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
	if err != nil || res.Commit.IsZero() {
		t.Fatalf("update after re-clone: %+v %v", res, err)
	}
}

// TestCrashMidEditConverges: a process killed after editing the working tree (and even
// after pushing) is replaced by one that converges without a duplicate commit.
func TestCrashMidEditConverges(t *testing.T) {
	w := newWorld(t, seed(t))
	dir := t.TempDir()
	r := w.open(t, dir, nil)
	crash := errors.New("killed")
	// Killed mid-edit: a stray edit stays in the working tree.
	_, err := r.Update(ctxT(t), func(ctx context.Context, d string) (*update.ChangeSet, error) {
		os.WriteFile(filepath.Join(d, "README.md"), []byte("half-written"), 0o644)
		panicLike(d)
		return nil, crash
	})
	if !errors.Is(err, crash) {
		t.Fatal(err)
	}
	// A new process on the same data dir, as after a restart.
	r = w.open(t, dir, nil)
	res, err := r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
	if err != nil || res.Commit.IsZero() {
		t.Fatalf("update after a crash: %+v %v", res, err)
	}
	if warn := r.Warnings(); len(warn) != 1 || !strings.Contains(warn[0], "interrupted") {
		t.Errorf("warnings = %v", warn)
	}
	if got, _ := testenv.ReadFile(w.path, "main", "README.md"); got != "demo\n" {
		t.Errorf("a stray edit was committed: README.md = %q", got)
	}
	// Killed after the push, before recording it: the next run finds nothing to do.
	state := filepath.Join(dir, "work.json")
	os.WriteFile(state, []byte(`{"commit":"`+res.Base.String()+`","editing":true}`), 0o644)
	r = w.open(t, dir, nil)
	res, err = r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
	if err != nil || !res.Commit.IsZero() {
		t.Errorf("after a crash past the push: %+v %v (want no commit)", res, err)
	}
	if log, _ := testenv.Log(w.path, "main"); len(log) != 2 {
		t.Errorf("%d commits, want 2", len(log))
	}
}

// panicLike simulates the rest of a killed process's edit: a second file half-written.
func panicLike(dir string) {
	os.WriteFile(filepath.Join(dir, "apps", "flask.yaml"), []byte("kind: Deploy"), 0o644)
}

func TestServerStoppedMidPush(t *testing.T) {
	w := newWorld(t, seed(t))
	r := w.open(t, t.TempDir(), nil)
	inner := setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1")
	_, err := r.Update(ctxT(t), func(ctx context.Context, dir string) (*update.ChangeSet, error) {
		w.srv.Stop() // the server goes away between fetch and push
		return inner(ctx, dir)
	})
	if err == nil || !strings.Contains(err.Error(), "git push") {
		t.Fatalf("push to a stopped server: err = %v", err)
	}
	if err := w.srv.Restart(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	res, err := r.Update(ctxT(t), inner)
	if err != nil || res.Commit.IsZero() {
		t.Fatalf("after the server came back: %+v %v", res, err)
	}
	if log, _ := testenv.Log(w.path, "main"); len(log) != 2 {
		t.Errorf("%d commits, want 2", len(log))
	}
}

// TestRollbackByForcePush: users roll back with reset --hard + push -f. The mirror follows
// the new history; the dropped commit is not resurrected, and Reverted tells the caller not
// to make the same update again.
func TestRollbackByForcePush(t *testing.T) {
	w := newWorld(t, seed(t))
	r := w.open(t, t.TempDir(), nil)
	const old, new = "registry.example.com/team/flaskapp:develop-v1.8.0", "registry.example.com/team/flaskapp:develop-v1.8.1"
	res, err := r.Update(ctxT(t), setImage("flask", new))
	if err != nil || res.Commit.IsZero() {
		t.Fatal(res, err)
	}
	fluxdemo := update.Workload{Kind: "Deployment", Namespace: "my-demo", Name: "fluxdemo"}
	if r.Reverted("apps/flask.yaml", fluxdemo, "flask", new, old) {
		t.Error("the forward change reads as reverted")
	}
	// The human rolls back and adds a commit of their own on the old history.
	if err := testenv.ResetBranch(w.path, "main", res.Base); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CommitFiles(w.path, "main", map[string]string{"NOTES.md": "rolled back\n"}, "roll back flask"); err != nil {
		t.Fatal(err)
	}
	head, err := r.Checkout(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(r.WorkDir(), "apps", "flask.yaml"))
	if !strings.Contains(string(b), old) {
		t.Errorf("working tree did not follow the rollback:\n%s", b)
	}
	if !r.Reverted("apps/flask.yaml", fluxdemo, "flask", old, new) {
		t.Error("Reverted does not report the rolled-back update")
	}
	// An update to something else still goes through, on the new history.
	res, err = r.Update(ctxT(t), setImage("nginx", "nginx:1.17"))
	if err != nil || res.Base != head {
		t.Fatalf("update after rollback: %+v %v", res, err)
	}
	log, _ := testenv.Log(w.path, "main")
	for _, c := range log {
		if c.Hash == res.Base || strings.HasPrefix(c.Message, "Update my-demo/fluxdemo flask") {
			if strings.HasPrefix(c.Message, "Update my-demo/fluxdemo flask") {
				t.Errorf("the dropped commit %s came back", c.Hash)
			}
		}
	}
	if len(log) != 3 {
		t.Errorf("%d commits after rollback + one update, want 3", len(log))
	}
}

func TestPushBranch(t *testing.T) {
	w := newWorld(t, seed(t))
	r := w.open(t, t.TempDir(), func(o *git.Options) { o.PushBranch = "imagebot/updates" })
	res, err := r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
	if err != nil || res.Commit.IsZero() {
		t.Fatal(res, err)
	}
	main, _ := testenv.Head(w.path, "main")
	pb, err := testenv.Head(w.path, "imagebot/updates")
	if err != nil {
		t.Fatal(err)
	}
	if pb.Hash != res.Commit || main.Hash != res.Base || pb.ParentHashes[0] != main.Hash {
		t.Errorf("push branch %s (parent %v), main %s, result %+v", pb.Hash, pb.ParentHashes, main.Hash, res)
	}
	// Main moves on; the next cycle rebuilds the push branch on it (forced: it is ours).
	if _, err := testenv.CommitFiles(w.path, "main", map[string]string{"x.txt": "x\n"}, "human"); err != nil {
		t.Fatal(err)
	}
	res, err = r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
	if err != nil || res.Commit.IsZero() {
		t.Fatal(res, err)
	}
	main, _ = testenv.Head(w.path, "main")
	pb, _ = testenv.Head(w.path, "imagebot/updates")
	if pb.ParentHashes[0] != main.Hash {
		t.Errorf("push branch not rebuilt on main")
	}
	if res.Head != main.Hash {
		t.Errorf("the working tree holds %s, want main's head %s", res.Head, main.Hash)
	}
	// The same updates again, main unchanged: the push branch already holds them, so
	// nothing is pushed (no new commit every cycle for the same review).
	again, err := r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
	if err != nil || !again.Commit.IsZero() {
		t.Fatalf("the same update again: %+v %v", again, err)
	}
	if now, _ := testenv.Head(w.path, "imagebot/updates"); now.Hash != pb.Hash {
		t.Errorf("the push branch moved to %s for the same changes", now.Hash)
	}
	// A further update is pushed (a new review commit).
	res, err = r.Update(ctxT(t), setImage("nginx", "nginx:1.17"))
	if err != nil || res.Commit.IsZero() {
		t.Fatalf("a further update: %+v %v", res, err)
	}
}

func TestShallowMirror(t *testing.T) {
	w := newWorld(t, seed(t))
	for i := range 3 {
		if _, err := testenv.CommitFiles(w.path, "main", map[string]string{"n.txt": fmt.Sprint(i)}, "human"); err != nil {
			t.Fatal(err)
		}
	}
	r := w.open(t, t.TempDir(), func(o *git.Options) { o.Depth = 1 })
	res, err := r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
	if err != nil || res.Commit.IsZero() {
		t.Fatal(res, err)
	}
	if _, err := testenv.CommitFiles(w.path, "main", map[string]string{"n.txt": "later"}, "human"); err != nil {
		t.Fatal(err)
	}
	res, err = r.Update(ctxT(t), setImage("nginx", "nginx:1.17"))
	if err != nil || res.Commit.IsZero() {
		t.Fatal(res, err)
	}
	if got, _ := testenv.ReadFile(w.path, "main", "n.txt"); got != "later" {
		t.Errorf("n.txt = %q", got)
	}
}

func TestSignedCommits(t *testing.T) {
	w := newWorld(t, seed(t))
	key, err := openpgp.NewEntity("imagebot", "", "bot@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := w.open(t, t.TempDir(), func(o *git.Options) { o.SigningKey = key })
	if _, err := r.Update(ctxT(t), setImage("nginx", "nginx:1.17")); err != nil {
		t.Fatal(err)
	}
	head, _ := testenv.Head(w.path, "main")
	var pub strings.Builder
	aw, _ := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err := key.Serialize(aw); err != nil {
		t.Fatal(err)
	}
	aw.Close()
	if _, err := head.Verify(pub.String()); err != nil {
		t.Errorf("signature does not verify: %v\n%s", err, head.PGPSignature)
	}
}

// TestHangingServer: a server that accepts the connection and then never answers ends a
// fetch at the operation's Timeout, or when the caller's context ends, not never.
func TestHangingServer(t *testing.T) {
	hole := testenv.BlackHole(t)
	key := filepath.Join(t.TempDir(), "key")
	if _, err := git.GenerateKey(key, git.KeyEd25519, "test"); err != nil {
		t.Fatal(err)
	}
	auth, err := git.SSHAuth{User: "git", KeyFile: key, InsecureIgnoreHostKey: true}.Method()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		timeout time.Duration
		cancel  time.Duration // the caller gives up after this
		want    error
	}{
		{"timeout", 300 * time.Millisecond, time.Minute, context.DeadlineExceeded},
		{"caller gives up", time.Minute, 300 * time.Millisecond, context.Canceled},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(c.cancel, cancel)
			start := time.Now()
			r, err := git.Open(ctx, git.Options{URL: "ssh://git@" + hole + "/r.git", Dir: t.TempDir(), Auth: auth, Timeout: c.timeout})
			if err == nil {
				_, err = r.Fetch(ctx)
			}
			took := time.Since(start)
			if !errors.Is(err, c.want) || took > 20*time.Second {
				t.Fatalf("after %v: %v; want %v", took, err, c.want)
			}
			t.Logf("ended after %v: %v", took, err)
		})
	}
}

// TestPushFinishesAfterCancel: a caller that gives up (a shutdown) once the edit is made does
// not cut the push: the commit lands, and the result says so.
func TestPushFinishesAfterCancel(t *testing.T) {
	w := newWorld(t, seed(t))
	r := w.open(t, t.TempDir(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	edit := setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1")
	res, err := r.Update(ctx, func(ctx context.Context, dir string) (*update.ChangeSet, error) {
		cs, err := edit(ctx, dir)
		cancel()
		return cs, err
	})
	if err != nil || res.Commit.IsZero() {
		t.Fatalf("%+v %v", res, err)
	}
	if head, _ := testenv.Head(w.path, "main"); head.Hash != res.Commit {
		t.Errorf("the server has %s, the result says %s", head.Hash, res.Commit)
	}
}

// TestRevertKnownToAFreshDataDir: the record of what imagebot pushed is read back from the
// branch by a Repo with an empty data dir (a new pod, another replica), so a human's revert
// commit is still a pin there; a human's own image change is not taken for imagebot's.
func TestRevertKnownToAFreshDataDir(t *testing.T) {
	w := newWorld(t, seed(t))
	const file = "apps/flask.yaml"
	const old, new = "registry.example.com/team/flaskapp:develop-v1.8.0", "registry.example.com/team/flaskapp:develop-v1.8.1"
	r := w.open(t, t.TempDir(), nil)
	if res, err := r.Update(ctxT(t), setImage("flask", new)); err != nil || res.Commit.IsZero() {
		t.Fatal(res, err)
	}
	pushed, err := testenv.ReadFile(w.path, "main", file)
	if err != nil {
		t.Fatal(err)
	}
	// A human reverts it, and changes nginx by hand.
	human := strings.Replace(strings.Replace(pushed, new, old, 1), "nginx:1.16", "nginx:1.17", 1)
	if _, err := testenv.CommitFiles(w.path, "main", map[string]string{file: human}, "Revert flask; nginx 1.17"); err != nil {
		t.Fatal(err)
	}
	fresh := w.open(t, t.TempDir(), nil)
	if _, err := fresh.Checkout(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	fluxdemo := update.Workload{Kind: "Deployment", Namespace: "my-demo", Name: "fluxdemo"}
	if !fresh.Reverted(file, fluxdemo, "flask", old, new) {
		t.Error("a fresh data dir does not know imagebot's reverted update")
	}
	if fresh.Reverted(file, fluxdemo, "nginx", "nginx:1.16", "nginx:1.17") {
		t.Error("a human's image change was taken for imagebot's")
	}
}

// TestMirrorBrokenWhileRunning: objects lost from the mirror under a running Repo (a disk
// error, a stray cleanup) are noticed by the next Checkout, which clones again, warns, and
// converges on the remote head.
func TestMirrorBrokenWhileRunning(t *testing.T) {
	w := newWorld(t, seed(t))
	dir := t.TempDir()
	r := w.open(t, dir, nil)
	if _, err := r.Checkout(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	r.Warnings() // the first clone's
	objects := filepath.Join(dir, "mirror", "objects")
	entries, err := os.ReadDir(objects)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries { // every object, loose or packed; the refs stay
		if err := os.RemoveAll(filepath.Join(objects, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	h, err := testenv.CommitFiles(w.path, "main", map[string]string{"NOTES.md": "after the damage\n"}, "human")
	if err != nil {
		t.Fatal(err)
	}
	head, err := r.Checkout(ctxT(t))
	if err != nil || head != h {
		t.Fatalf("checkout after the damage: %s %v (want %s)", head, err, h)
	}
	if warn := r.Warnings(); len(warn) != 1 || !strings.Contains(warn[0], "cloning again") {
		t.Errorf("warnings = %v", warn)
	}
	if b, err := os.ReadFile(filepath.Join(r.WorkDir(), "NOTES.md")); err != nil || string(b) != "after the damage\n" {
		t.Errorf("working tree: %q %v", b, err)
	}
	res, err := r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
	if err != nil || res.Commit.IsZero() {
		t.Fatalf("update after the re-clone: %+v %+v %v", res, res.Changes, err)
	}
}

// TestMarkerRevertKnownToAFreshDataDir: the same for a Flux v2 $imagepolicy marker target,
// whose name only the config's marker map resolves (Options.Markers).
func TestMarkerRevertKnownToAFreshDataDir(t *testing.T) {
	const file = "deploy/kustomization.yaml"
	const before = "images:\n- name: registry.example.com/team/app\n  newTag: v1 # {\"$imagepolicy\": \"ns:app:tag\"}\n"
	w := newWorld(t, map[string]string{file: before})
	markers := map[string]update.MarkerPolicy{"ns:app": {Image: "registry.example.com/team/app", Policy: "glob:v*"}}
	r := w.open(t, t.TempDir(), func(o *git.Options) { o.Markers = markers })
	next, _ := name.ParseReference("registry.example.com/team/app:v2")
	res, err := r.Update(ctxT(t), func(ctx context.Context, dir string) (*update.ChangeSet, error) {
		f := update.Finder{Markers: markers}
		found, err := f.Find(ctx, dir)
		if err != nil || len(found.Targets) != 1 {
			return nil, fmt.Errorf("find: %v %+v", err, found)
		}
		return f.Apply(ctx, dir, []update.Decision{{Target: found.Targets[0], Image: next}})
	})
	if err != nil || res.Commit.IsZero() {
		t.Fatal(res, err)
	}
	if _, err := testenv.CommitFiles(w.path, "main", map[string]string{file: before}, "Revert to v1"); err != nil {
		t.Fatal(err)
	}
	t0 := res.Changes.Changes[0]
	for _, c := range []struct {
		markers map[string]update.MarkerPolicy
		want    bool
	}{{markers, true}, {nil, false}} {
		fresh := w.open(t, t.TempDir(), func(o *git.Options) { o.Markers = c.markers })
		if _, err := fresh.Checkout(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if got := fresh.Reverted(t0.File, t0.Workload, t0.Container, t0.Old, t0.New); got != c.want {
			t.Errorf("with markers %v: Reverted = %v, want %v", c.markers != nil, got, c.want)
		}
	}
}
