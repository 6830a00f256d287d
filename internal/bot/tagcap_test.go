package bot_test

import (
	"context"
	"errors"
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

// watchRecorder is a Scheduler that records what the bot asks it to watch.
type watchRecorder struct {
	mu      sync.Mutex
	watches map[string]scan.Watch
}

func (r *watchRecorder) Watch(id string, w scan.Watch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watches[id] = w
}
func (r *watchRecorder) Unwatch(id string) {}
func (r *watchRecorder) Latest(name.Repository, string) (*scan.Result, bool) {
	return nil, false
}

// TestWatchCarriesTheRepositorysTagCap: the tag cap of a repository's config goes with each
// of its images' watches (the scanner is shared; the cap is the repository's).
func TestWatchCarriesTheRepositorysTagCap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seed := strings.NewReplacer("IMAGE", "registry.example.com/team/app:v1", "POLICY", "glob:v*").Replace(appTemplate)
	repo := openRepo(t, ctx, map[string]string{"apps/app.yaml": seed})
	rec := &watchRecorder{watches: map[string]scan.Watch{}}
	b := bot.New(bot.Options{Name: "capped", Repo: repo, Scheduler: rec, TagCap: 123})
	if _, err := b.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.watches) != 1 {
		t.Fatalf("watches: %+v", rec.watches)
	}
	for _, w := range rec.watches {
		if w.Need.TagCap != 123 || w.Repo.Name() != "registry.example.com/team/app" {
			t.Errorf("watch %s: tag cap %d", w.Repo.Name(), w.Need.TagCap)
		}
	}
}

// TestStoppedBotRefuses: once Stop has returned (after any edit in flight), the bot takes
// no more reconciles or edits, so that a new bot on the same data dir works alone.
func TestStoppedBotRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	repo := openRepo(t, ctx, map[string]string{"README.md": "x\n"})
	b := bot.New(bot.Options{Name: "stopped", Repo: repo, Scheduler: &watchRecorder{watches: map[string]scan.Watch{}}})
	b.Start(ctx)
	b.Stop()
	if _, err := b.ReconcileOnce(ctx); !errors.Is(err, bot.ErrStopped) {
		t.Errorf("reconcile after Stop: %v", err)
	}
	if _, err := b.Edit(ctx, nil, nil); !errors.Is(err, bot.ErrStopped) {
		t.Errorf("edit after Stop: %v", err)
	}
}

// openRepo opens a git.Repo on a new repository of the test git server holding files.
func openRepo(t *testing.T, ctx context.Context, files map[string]string) *git.Repo {
	t.Helper()
	env := testenv.New(t, testenv.Options{GitServer: true})
	url, err := env.Git.CreateRepo("config", "main", files)
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
	return repo
}
