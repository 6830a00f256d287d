package git_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/testenv"
	"imagebot.dev/imagebot/internal/update"
)

// assertCleanTree fails unless the working tree of r holds exactly the files of commit (as
// the server's repository at repoPath has it), and no edit is marked in flight.
func assertCleanTree(t *testing.T, r *git.Repo, dataDir, repoPath string, commit plumbing.Hash) {
	t.Helper()
	repo, err := gogit.PlainOpen(repoPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := repo.CommitObject(commit)
	if err != nil {
		t.Fatal(err)
	}
	files, err := c.Files()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	if err := files.ForEach(func(f *object.File) error {
		s, err := f.Contents()
		want[f.Name] = s
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	err = filepath.WalkDir(r.WorkDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(r.WorkDir(), p)
		got[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("working tree:\n%v\nwant the files of %s:\n%v", got, commit, want)
	}
	state, err := os.ReadFile(filepath.Join(dataDir, "work.json"))
	if err != nil || !strings.Contains(string(state), commit.String()) || strings.Contains(string(state), `"editing":true`) {
		t.Errorf("work.json = %s (%v); want %s, not editing", state, err, commit)
	}
}

// imagebotCommits counts the commits on branch that imagebot authored.
func imagebotCommits(t *testing.T, repoPath string) int {
	t.Helper()
	log, err := testenv.Log(repoPath, "main")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range log {
		if c.Author.Email == git.DefaultSignature.Email {
			n++
		}
	}
	return n
}

// TestPushOptions: push options reach a server that advertises them (a pre-receive hook
// records GIT_PUSH_OPTION_*), in a stable order; a server without the capability gets no
// push and the caller a clear error.
func TestPushOptions(t *testing.T) {
	w := newWorld(t, seed(t))
	record := filepath.Join(t.TempDir(), "push-options")
	hook := `#!/bin/sh
out='` + record + `'
{
  echo "count=${GIT_PUSH_OPTION_COUNT-unset}"
  i=0
  while [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ]; do
    eval "echo \"\$GIT_PUSH_OPTION_$i\""
    i=$((i+1))
  done
} >> "$out"
`
	if err := w.srv.InstallHook("config", "pre-receive", hook); err != nil {
		t.Fatal(err)
	}
	opts := map[string]string{"topic": "image updates", "merge_request.create": "true", "ci.variable": "DEPLOY=1", "ci.skip": "yes"}
	dir := t.TempDir()
	r := w.open(t, dir, func(o *git.Options) { o.PushOptions = opts })

	t.Run("not advertised", func(t *testing.T) {
		before, _ := testenv.Head(w.path, "main")
		res, err := r.Update(ctxT(t), setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1"))
		if err == nil || !strings.Contains(err.Error(), "does not accept push options") || !strings.Contains(err.Error(), w.url) {
			t.Fatalf("err = %v; want a clear error naming %s", err, w.url)
		}
		if res.Attempts != 1 {
			t.Errorf("%d attempts: a server that lacks a capability is not a race", res.Attempts)
		}
		if after, _ := testenv.Head(w.path, "main"); after.Hash != before.Hash {
			t.Errorf("the branch moved to %s", after.Hash)
		}
		if _, err := os.Stat(record); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the server's hook ran (%v): something was pushed", err)
		}
		assertCleanTree(t, r, dir, w.path, before.Hash)
	})

	t.Run("advertised", func(t *testing.T) {
		if err := w.srv.ConfigureRepo("config", "receive.advertisePushOptions", "true"); err != nil {
			t.Fatal(err)
		}
		// Several pushes: the options arrive the same way every time.
		for i, image := range []string{"registry.example.com/team/flaskapp:develop-v1.8.1", "registry.example.com/team/flaskapp:develop-v1.8.2", "nginx:1.17"} {
			container := "flask"
			if strings.HasPrefix(image, "nginx") {
				container = "nginx"
			}
			res, err := r.Update(ctxT(t), setImage(container, image))
			if err != nil || res.Commit.IsZero() {
				t.Fatalf("push %d: %+v %v", i, res, err)
			}
		}
		b, err := os.ReadFile(record)
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 0, len(opts))
		for k := range opts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		one := fmt.Sprintf("count=%d\n", len(opts))
		for _, k := range keys {
			one += k + "=" + opts[k] + "\n"
		}
		if want := strings.Repeat(one, 3); string(b) != want {
			t.Errorf("the server received:\n%s\nwant (sorted by key, each push):\n%s", b, want)
		}
	})
}

// raceHook is an update hook that makes another writer win every push: it commits on top of
// the branch (as a person pushing at that moment would) and lets receive-pack go on, whose
// update of the branch from the old commit then fails.
const raceHook = `#!/bin/sh
ref=$1 old=$2
parent=$(git rev-parse "$ref") || exit 1
export GIT_AUTHOR_NAME=Racer GIT_AUTHOR_EMAIL=racer@example.com GIT_COMMITTER_NAME=Racer GIT_COMMITTER_EMAIL=racer@example.com
c=$(echo "racer" | git commit-tree "$parent^{tree}" -p "$parent") || exit 1
git update-ref "$ref" "$c" "$parent" || exit 1
exit 0
`

// TestPushRetriesRunOut: a writer that always wins (moving the branch between imagebot's
// fetch and push, or while the server receives the push) makes Update give up after
// MaxAttempts with ErrPushRace, with nothing of imagebot's on the server and a clean working
// tree; once the other writer stops, the next Update lands.
func TestPushRetriesRunOut(t *testing.T) {
	const attempts = 3
	edit := setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1")
	for _, c := range []struct {
		name string
		// arm makes the other writer win; it returns the edit to run.
		arm func(t *testing.T, w *world) git.EditFunc
	}{
		{"moved before the push", func(t *testing.T, w *world) git.EditFunc {
			n := 0
			return func(ctx context.Context, dir string) (*update.ChangeSet, error) {
				n++
				if _, err := testenv.CommitFiles(w.path, "main", map[string]string{fmt.Sprintf("human-%d.txt", n): "hi\n"}, "human"); err != nil {
					return nil, err
				}
				return edit(ctx, dir)
			}
		}},
		{"moved while the server receives", func(t *testing.T, w *world) git.EditFunc {
			if err := w.srv.InstallHook("config", "update", raceHook); err != nil {
				t.Fatal(err)
			}
			return edit
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, seed(t))
			dir := t.TempDir()
			r := w.open(t, dir, func(o *git.Options) { o.MaxAttempts = attempts })
			racing := c.arm(t, w)
			start := time.Now()
			res, err := r.Update(ctxT(t), racing)
			if !errors.Is(err, git.ErrPushRace) || !strings.Contains(err.Error(), w.url) {
				t.Fatalf("err = %v; want ErrPushRace naming %s", err, w.url)
			}
			t.Logf("after %v: %v", time.Since(start), err)
			if res.Attempts != attempts || !res.Commit.IsZero() {
				t.Errorf("result %+v: want %d attempts and no commit", res, attempts)
			}
			log, _ := testenv.Log(w.path, "main")
			if n := imagebotCommits(t, w.path); n != 0 || len(log) != 1+attempts {
				t.Errorf("the server has %d commits, %d by imagebot; want %d, none by imagebot", len(log), n, 1+attempts)
			}
			assertCleanTree(t, r, dir, w.path, res.Base)
			// The other writer stops: the next Update lands on top of its commits.
			w.srv.InstallHook("config", "update", "")
			head, _ := testenv.Head(w.path, "main")
			res, err = r.Update(ctxT(t), edit)
			if err != nil || res.Commit.IsZero() || res.Base != head.Hash {
				t.Fatalf("after the race: %+v %v (want a commit on %s)", res, err, head.Hash)
			}
			if n := imagebotCommits(t, w.path); n != 1 {
				t.Errorf("%d commits by imagebot, want 1", n)
			}
		})
	}
}

// TestServerCrashMidPush: the server dies (sshd and everything it runs, SIGKILL) while it
// receives a push. Update returns a clear error at once, the working tree is clean, and once
// the server is back the next Update converges: it pushes the commit if the crash lost it,
// and pushes nothing if the branch had already moved to it (no duplicate).
func TestServerCrashMidPush(t *testing.T) {
	for _, c := range []struct {
		name string
		hook string // which hook sleeps until the crash
		// landed: the crash comes after the branch was updated, before the server said so.
		landed bool
	}{
		{"before the branch moves", "pre-receive", false},
		{"after the branch moved", "reference-transaction", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, seed(t))
			tmp := t.TempDir()
			armed, ready := filepath.Join(tmp, "armed"), filepath.Join(tmp, "ready")
			// The hook sleeps (bounded) once, on the push the test crashes; a
			// reference-transaction hook only once the branch update is committed.
			script := `#!/bin/sh
if [ -e '` + armed + `' ] && { [ "$1" = committed ] || [ '` + c.hook + `' = pre-receive ]; }; then
  rm -f '` + armed + `'
  : > '` + ready + `'
  sleep 20
fi
exit 0
`
			if err := w.srv.InstallHook("config", c.hook, script); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			r := w.open(t, dir, nil)
			before, _ := testenv.Head(w.path, "main")
			if err := os.WriteFile(armed, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			crashed := make(chan error, 1)
			go func() {
				deadline := time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) {
					if _, err := os.Stat(ready); err == nil {
						w.srv.Crash()
						crashed <- nil
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
				crashed <- errors.New("the hook never ran")
			}()
			start := time.Now()
			edit := setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1")
			res, err := r.Update(ctxT(t), edit)
			took := time.Since(start)
			if cerr := <-crashed; cerr != nil {
				t.Fatalf("%v; update: %+v %v", cerr, res, err)
			}
			head, _ := testenv.Head(w.path, "main")
			switch {
			case err == nil && c.landed && res.Commit == head.Hash && took <= 10*time.Second:
				// The fetch after the dropped connection (before sshd was down for good)
				// saw the branch at the commit: the push is known to have landed.
				t.Logf("after %v: the unconfirmed push was seen on the branch", took)
				assertCleanTree(t, r, dir, w.path, head.Hash)
			case err == nil || !strings.Contains(err.Error(), "git push "+w.url) || !strings.Contains(err.Error(), "before it confirmed the push") || took > 10*time.Second:
				t.Fatalf("after %v: err = %v; want, within 10s, a push error naming %s that says the push was not confirmed", took, err, w.url)
			default:
				t.Logf("after %v: %v", took, err)
				assertCleanTree(t, r, dir, w.path, before.Hash)
			}
			if landed := head.Hash != before.Hash; landed != c.landed {
				t.Fatalf("server head %s (was %s): landed %v, want %v", head.Hash, before.Hash, landed, c.landed)
			}
			if !c.landed {
				// Nothing half-written: the branch is at its old commit and the server's
				// repository still reads.
				if _, err := testenv.Log(w.path, "main"); err != nil {
					t.Fatal(err)
				}
			}

			if err := w.srv.Restart(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			res, err = r.Update(ctxT(t), edit)
			if err != nil {
				t.Fatalf("after the server came back: %+v %v", res, err)
			}
			if pushed := !res.Commit.IsZero(); pushed == c.landed {
				t.Errorf("after the server came back: commit %s; want a push only if the crash lost it", res.Commit)
			}
			if n := imagebotCommits(t, w.path); n != 1 {
				t.Errorf("%d commits by imagebot on the server, want exactly 1", n)
			}
			if got, _ := testenv.ReadFile(w.path, "main", "apps/flask.yaml"); !strings.Contains(got, "flaskapp:develop-v1.8.1") {
				t.Errorf("apps/flask.yaml on the server:\n%s", got)
			}
		})
	}
}

// TestUnconfirmedPushThatLanded: the server moves the branch and then the connection drops
// before it confirms the push (its receive-pack dies), while the server stays up: the fetch
// that follows sees the branch at the commit, so the push counts as done, once.
func TestUnconfirmedPushThatLanded(t *testing.T) {
	w := newWorld(t, seed(t))
	armed := filepath.Join(t.TempDir(), "armed")
	script := `#!/bin/sh
if [ "$1" = committed ] && [ -e '` + armed + `' ]; then
  rm -f '` + armed + `'
  kill -9 $PPID
fi
exit 0
`
	if err := w.srv.InstallHook("config", "reference-transaction", script); err != nil {
		t.Fatal(err)
	}
	r := w.open(t, t.TempDir(), nil)
	if err := os.WriteFile(armed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	edit := setImage("flask", "registry.example.com/team/flaskapp:develop-v1.8.1")
	res, err := r.Update(ctxT(t), edit)
	head, _ := testenv.Head(w.path, "main")
	if err != nil || res.Commit != head.Hash || res.Head != head.Hash {
		t.Fatalf("update: %+v %v; server head %s", res, err, head.Hash)
	}
	if _, err := os.Stat(armed); err == nil {
		t.Fatal("the hook did not run: the push was confirmed normally")
	}
	again, err := r.Update(ctxT(t), edit)
	if err != nil || !again.Commit.IsZero() {
		t.Fatalf("the same update again: %+v %v", again, err)
	}
	if n := imagebotCommits(t, w.path); n != 1 {
		t.Errorf("%d commits by imagebot on the server, want 1", n)
	}
}
