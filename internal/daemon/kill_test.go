package daemon_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/testenv"
)

// TestSIGKILLConverges runs the real binary and kills it with SIGKILL at random moments
// while it updates; restarted on the same data dir, it converges to the newest tag with no
// duplicate commit and no half-written file.
func TestSIGKILLConverges(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "imagebot")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/imagebot").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := testenv.New(t, testenv.Options{Registry: true, GitServer: true})
	ctx := context.Background()
	t0 := time.Now().Add(-24 * time.Hour)
	push := func(tag string, i int) {
		if _, err := env.Registry.Push(ctx, "team/flaskapp", tag, testenv.ImageSpec{Created: t0.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	push("develop-v1.8.0", 0)
	url, err := env.Git.CreateRepo("config", "main", map[string]string{"apps/flask.yaml": strings.ReplaceAll(seed, "REG", env.Registry.Host)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := writeConfig(t, dir, url, env.Git, "2s", "1s", "")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--no-sync", "--config", cfg, "--data-dir", filepath.Join(dir, "data"),
			"--listen", freeAddr(t), "--log-format", "text")
		cmd.Stderr, _ = os.Create(filepath.Join(dir, "imagebot.log"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	file := func() string {
		s, _ := testenv.ReadFile(env.Git.RepoPath("config"), "main", "apps/flask.yaml")
		return s
	}
	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed: the same kill moments every run
	last := ""
	for i := 1; i <= 6; i++ {
		last = fmt.Sprintf("develop-v1.9.%d", i)
		push(last, i)
		cmd := start()
		time.Sleep(time.Duration(200+rng.IntN(1800)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	cmd := start()
	defer func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(file(), "flaskapp:"+last+"\n") {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "imagebot.log"))
			t.Fatalf("did not converge to %s; file:\n%s\nlast log:\n%s", last, file(), log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, err := testenv.Log(env.Git.RepoPath("config"), "main")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, c := range log {
		subject := strings.SplitN(c.Message, "\n", 2)[0]
		seen[subject]++
		if seen[subject] > 1 {
			t.Errorf("commit %q appears %d times", subject, seen[subject])
		}
		if c.NumParents() > 1 {
			t.Errorf("a merge commit: %s", c.Hash)
		}
	}
	if want := strings.Replace(strings.ReplaceAll(seed, "REG", env.Registry.Host), "develop-v1.8.0", last, 1); file() != want {
		t.Errorf("final file:\n%s\nwant:\n%s", file(), want)
	}
	t.Logf("%d commits after 6 kills: %v", len(log), seen)
}
