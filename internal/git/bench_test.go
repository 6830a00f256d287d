package git_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/testenv"
	"imagebot.dev/imagebot/internal/update"
)

const (
	benchDirs     = 200
	benchPerDir   = 100 // 20,000 files
	benchCommits  = 5000
	benchEditsPer = 10
)

func benchFile(d, f int) string { return fmt.Sprintf("apps/d%03d/f%03d.yaml", d, f) }

// benchWorld serves a repository of 20,000 files and 5,000 commits, built with git
// fast-import (the test harness may use the git binary; imagebot never does).
func benchWorld(b *testing.B) *world {
	b.Helper()
	env := testenv.New(b, testenv.Options{GitServer: true})
	path := env.Git.RepoPath("big")
	if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", path).CombinedOutput(); err != nil {
		b.Fatalf("git init: %v\n%s", err, out)
	}
	cmd := exec.Command("git", "--git-dir", path, "fast-import", "--quiet")
	in, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(in)
	data := func(s string) { fmt.Fprintf(w, "data %d\n%s\n", len(s), s) }
	for c := 0; c < benchCommits; c++ {
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\n", 1700000000+c)
		data(fmt.Sprintf("commit %d", c))
		if c == 0 {
			for d := range benchDirs {
				for f := range benchPerDir {
					fmt.Fprintf(w, "M 100644 inline %s\n", benchFile(d, f))
					data(fmt.Sprintf("kind: Deployment\nmetadata:\n  name: d%d-f%d\nimage: app-%d-%d:0\n", d, f, d, f))
				}
			}
			continue
		}
		d, f := c%benchDirs, (c/benchDirs)%benchPerDir
		fmt.Fprintf(w, "M 100644 inline %s\n", benchFile(d, f))
		data(fmt.Sprintf("kind: Deployment\nmetadata:\n  name: d%d-f%d\nimage: app-%d-%d:0\n# revision %d\n", d, f, d, f, c))
	}
	w.Flush()
	in.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatal("fast-import:", err)
	}
	return &world{srv: env.Git, url: env.Git.URL("big"), path: path,
		auth: git.SSHAuth{User: env.Git.User, KeyFile: env.Git.DeployKey, KnownHosts: env.Git.KnownHosts}}
}

// bumpEdit moves the image tag of n files (from the first) by one.
func bumpEdit(first, n int) git.EditFunc {
	return func(ctx context.Context, dir string) (*update.ChangeSet, error) {
		cs := &update.ChangeSet{}
		for i := first; i < first+n; i++ {
			d, f := i%benchDirs, (i/benchDirs)%benchPerDir
			file := benchFile(d, f)
			p := filepath.Join(dir, file)
			body, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			s := string(body)
			at := strings.Index(s, "image: ")
			end := at + strings.IndexByte(s[at:], '\n')
			colon := strings.LastIndexByte(s[:end], ':')
			tag, _ := strconv.Atoi(s[colon+1 : end])
			old, new := s[at+7:end], s[at+7:colon+1]+strconv.Itoa(tag+1)
			if err := os.WriteFile(p, []byte(s[:at+7]+new+s[end:]), 0o644); err != nil {
				return nil, err
			}
			cs.Changes = append(cs.Changes, update.Change{File: file, Container: "app", Old: old, New: new,
				Workload: update.Workload{Kind: "Deployment", Name: fmt.Sprintf("d%d-f%d", d, f)}})
		}
		return cs, nil
	}
}

func reportPeakRSS(b *testing.B) {
	b.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			b.ReportMetric(float64(kb)/1024, "peak-RSS-MB")
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MB")
}

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

// BenchmarkFirstMirror: the first clone of 20,000 files and 5,000 commits, and its checkout.
func BenchmarkFirstMirror(b *testing.B) {
	w := benchWorld(b)
	for b.Loop() {
		r := w.open(b, b.TempDir(), nil)
		if _, err := r.Checkout(benchCtx(b)); err != nil {
			b.Fatal(err)
		}
	}
	reportPeakRSS(b)
}

// BenchmarkCycle: one cycle (fetch, edit 10 files, commit, push) with nothing new upstream,
// and with one new upstream commit (from another writer) to fetch first.
func BenchmarkCycle(b *testing.B) {
	w := benchWorld(b)
	bot := w.open(b, b.TempDir(), nil)
	other := w.open(b, b.TempDir(), nil)
	for _, r := range []*git.Repo{bot, other} {
		if _, err := r.Checkout(benchCtx(b)); err != nil {
			b.Fatal(err)
		}
	}
	n := 0
	b.Run("nothing-upstream", func(b *testing.B) {
		for b.Loop() {
			res, err := bot.Update(benchCtx(b), bumpEdit(n, benchEditsPer))
			if err != nil || res.Commit.IsZero() || res.Attempts != 1 {
				b.Fatal(res, err)
			}
			n += benchEditsPer
		}
	})
	b.Run("one-upstream-commit", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if _, err := other.Update(benchCtx(b), bumpEdit(10000+n, 1)); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			res, err := bot.Update(benchCtx(b), bumpEdit(n, benchEditsPer))
			if err != nil || res.Commit.IsZero() || res.Attempts != 1 {
				b.Fatal(res, err)
			}
			n += benchEditsPer
		}
	})
	reportPeakRSS(b)
}
