package testenv_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"

	"imagebot.dev/imagebot/internal/testenv"
)

// TestGitHTTPServer checks the HTTPS git server with Git's own client: clone and push with
// the right password or a token (trusting the server's CA file), and 401 for a wrong password
// or none.
func TestGitHTTPServer(t *testing.T) {
	dir := t.TempDir()
	repos := filepath.Join(dir, "repos")
	if _, err := gogit.PlainInit(filepath.Join(repos, "x.git"), true); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CommitFiles(filepath.Join(repos, "x.git"), "main", map[string]string{"a.txt": "a\n"}, "initial"); err != nil {
		t.Fatal(err)
	}
	s, err := testenv.StartGitHTTPServer(repos, testenv.GitHTTPOptions{Users: map[string]string{"alice": "pw"}, Tokens: []string{"tok"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	git := func(dir string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_SSL_CAINFO="+s.CAFile, "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false",
			"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	withCreds := func(user, pass string) string {
		return strings.Replace(s.URL("x"), "https://", "https://"+user+":"+pass+"@", 1)
	}

	for i, url := range []string{withCreds("alice", "pw"), withCreds("anyone", "tok")} {
		work := filepath.Join(dir, "clone", string(rune('a'+i)))
		if out, err := git(dir, "clone", "-q", "-b", "main", url, work); err != nil {
			t.Fatalf("clone: %v\n%s\n%s", err, out, s.Log())
		}
		os.WriteFile(filepath.Join(work, "b.txt"), []byte(url), 0o644)
		for _, args := range [][]string{{"add", "b.txt"}, {"commit", "-q", "-m", "over https"}, {"push", "-q", "origin", "HEAD:main"}} {
			if out, err := git(work, args...); err != nil {
				t.Fatalf("git %v: %v\n%s\n%s", args, err, out, s.Log())
			}
		}
		if got, err := testenv.ReadFile(filepath.Join(repos, "x.git"), "main", "b.txt"); got != url {
			t.Errorf("b.txt on the server = %q (%v), want %q", got, err, url)
		}
	}
	for _, url := range []string{withCreds("alice", "wrong"), s.URL("x")} {
		refused := s.Refused()
		out, err := git(dir, "ls-remote", url)
		if err == nil || s.Refused() == refused {
			t.Errorf("ls-remote %s: %v (refused %d times)\n%s", url, err, s.Refused()-refused, out)
		}
	}
}
