package testenv

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5/memfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// GitServer is an unprivileged sshd on loopback serving bare repositories through git-shell
// to one authorized deploy key.
type GitServer struct {
	Addr string // "127.0.0.1:PORT"
	User string // the ssh user (the current user)
	Dir  string
	// DeployKey is the private key file (OpenSSH format, ed25519) authorized on the server;
	// DeployKeyPub its public half (authorized_keys format).
	DeployKey    string
	DeployKeyPub string
	// KnownHosts is a known_hosts file holding the server's host key.
	KnownHosts string

	proc     *process
	start    func() (*process, error)
	gitShell string
}

// StartGitServer starts Debian's openssh-server in dir, with generated host and deploy keys.
func StartGitServer(ctx context.Context, dir string) (*GitServer, error) {
	sshd, err := binary("sshd", "/usr/sbin/sshd")
	if err != nil {
		return nil, err
	}
	gitShell, err := binary("git-shell", "/usr/bin/git-shell")
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("git server: current user: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	g := &GitServer{Addr: fmt.Sprintf("127.0.0.1:%d", port), User: u.Username, Dir: dir,
		DeployKey: filepath.Join(dir, "deploy_key"), KnownHosts: filepath.Join(dir, "known_hosts"), gitShell: gitShell}
	if err := os.MkdirAll(filepath.Join(dir, "repos"), 0o755); err != nil {
		return nil, err
	}
	hostPub, _, err := writeKeyPair(filepath.Join(dir, "host_key"), "imagebot-test-host")
	if err != nil {
		return nil, err
	}
	if _, g.DeployKeyPub, err = writeKeyPair(g.DeployKey, "imagebot-test-deploy"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(g.authorizedLine(g.DeployKeyPub)), 0o600); err != nil {
		return nil, err
	}
	known := knownhosts.Line([]string{knownhosts.Normalize(g.Addr)}, hostPub) + "\n"
	if err := os.WriteFile(g.KnownHosts, []byte(known), 0o644); err != nil {
		return nil, err
	}
	cfg := strings.Join([]string{
		fmt.Sprintf("Port %d", port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "host_key"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"UsePAM no",
		"StrictModes no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowUsers " + u.Username,
		"MaxStartups 100:30:200",
		"LogLevel VERBOSE",
		// bash, as a login shell run by sshd, reads ~/.bashrc unless it is nested (SHLVL);
		// a machine whose .bashrc is slow (pyenv init: ~100 ms) would make every git
		// session pay for it.
		"SetEnv SHLVL=1",
		"",
	}, "\n")
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// sshd's privilege separation needs this directory when run as root.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("git server: %w", err)
		}
	}
	g.start = func() (*process, error) {
		return startProcess(dir, "sshd", sshd, "-D", "-f", cfgPath, "-E", filepath.Join(dir, "sshd.log"))
	}
	if err := g.Restart(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// Restart stops sshd (when running) and starts it again with the same keys, port and
// repositories, for tests of a server that goes away and comes back.
func (g *GitServer) Restart(ctx context.Context) error {
	g.Stop()
	p, err := g.start()
	if err != nil {
		return err
	}
	g.proc = p
	if err := p.waitFor(ctx, "sshd listening on "+g.Addr, dialCheck(g.Addr)); err != nil {
		p.stop(time.Second)
		return err
	}
	return nil
}

// writeKeyPair writes a new ed25519 private key (OpenSSH format, mode 0600) to path and its
// public half to path.pub, and returns the public key and its authorized_keys line.
func writeKeyPair(path, comment string) (ssh.PublicKey, string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, "", err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, "", err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment
	return sshPub, line, os.WriteFile(path+".pub", []byte(line+"\n"), 0o644)
}

// authorizedLine is the authorized_keys line that lets pub run git commands (and nothing
// else) through git-shell.
func (g *GitServer) authorizedLine(pub string) string {
	return fmt.Sprintf("command=\"%s -c \\\"$SSH_ORIGINAL_COMMAND\\\"\",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty %s\n", g.gitShell, strings.TrimSpace(pub))
}

// AuthorizeKey authorizes another public key (authorized_keys format, as git.GenerateKey
// returns it) on the server, with the same git-shell restriction as the deploy key. sshd
// reads the file on every connection: no restart is needed.
func (g *GitServer) AuthorizeKey(pub string) error {
	pub = strings.TrimSpace(pub)
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub)); err != nil {
		return fmt.Errorf("git server: authorize key: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(g.Dir, "authorized_keys"), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("git server: authorize key: %w", err)
	}
	if _, err := f.WriteString(g.authorizedLine(pub)); err != nil {
		f.Close()
		return fmt.Errorf("git server: authorize key: %w", err)
	}
	return f.Close()
}

// ConfigureRepo sets a git config option ("section.name", e.g.
// "receive.advertisePushOptions") in the bare repository name.
func (g *GitServer) ConfigureRepo(name, key, value string) error {
	section, option, ok := strings.Cut(key, ".")
	if !ok || strings.Contains(option, ".") {
		return fmt.Errorf("git server: config key %q: want section.name", key)
	}
	repo, err := gogit.PlainOpen(g.RepoPath(name))
	if err != nil {
		return fmt.Errorf("git server: open %s: %w", name, err)
	}
	cfg, err := repo.Config()
	if err != nil {
		return err
	}
	cfg.Raw.Section(section).SetOption(option, value)
	return repo.SetConfig(cfg)
}

// InstallHook writes an executable server-side hook (pre-receive, update, post-receive …)
// into the bare repository name; an empty script removes it. git receive-pack runs it with
// the repository as its working directory, over SSH and HTTP alike.
func (g *GitServer) InstallHook(name, hook, script string) error {
	dir := filepath.Join(g.RepoPath(name), "hooks")
	if script == "" {
		if err := os.Remove(filepath.Join(dir, hook)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Written aside and renamed: a push running at the moment sees the old hook or the new
	// one, never a half-written file.
	tmp := filepath.Join(dir, "."+hook+".tmp")
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, hook))
}

// Crash kills sshd and everything it started (the connection processes, git-shell,
// receive-pack and its hooks) with SIGKILL at once, as a server that loses power would stop:
// nothing finishes what it was doing. sshd's connections run in sessions of their own, so
// Stop, which signals sshd's process group, would let them finish. Restart brings the server
// back.
func (g *GitServer) Crash() {
	if g.proc == nil {
		return
	}
	root := g.proc.Pid()
	// Kill from the top down, repeatedly: a process may fork while its descendants are
	// gathered. Bounded: a few rounds always suffice for a server that is not forking.
	for range 5 {
		pids := descendants(root)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(root, syscall.SIGKILL)
		if len(pids) == 0 {
			break
		}
	}
	g.proc.stop(time.Second) // reaps sshd
}

// descendants returns the ids of every process below pid, read from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command name (which may hold spaces) start after the last ')':
		// state, then ppid.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], child)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 && len(out) < 10000 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, children[p]...)
		queue = append(queue, children[p]...)
	}
	return out
}

// Stop stops sshd and its sessions.
func (g *GitServer) Stop() {
	if g.proc != nil {
		g.proc.stop(5 * time.Second)
	}
}

// Pids returns the process ids this server started.
func (g *GitServer) Pids() []int { return []int{g.proc.Pid()} }

// RepoPath is the bare repository's directory on the server.
func (g *GitServer) RepoPath(name string) string {
	return filepath.Join(g.Dir, "repos", name+".git")
}

// URL is the ssh:// URL of the bare repository name.
func (g *GitServer) URL(name string) string {
	return fmt.Sprintf("ssh://%s@%s%s", g.User, g.Addr, g.RepoPath(name))
}

// Auth returns go-git SSH auth with the deploy key and strict host key checking against the
// server's known_hosts.
func (g *GitServer) Auth() (*gitssh.PublicKeys, error) {
	return SSHAuth(g.User, g.DeployKey, g.KnownHosts)
}

// SSHAuth builds go-git SSH auth from a private key file and a known_hosts file.
func SSHAuth(user, keyFile, knownHostsFile string) (*gitssh.PublicKeys, error) {
	auth, err := gitssh.NewPublicKeysFromFile(user, keyFile, "")
	if err != nil {
		return nil, fmt.Errorf("load deploy key %s: %w", keyFile, err)
	}
	cb, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("load known_hosts %s: %w", knownHostsFile, err)
	}
	auth.HostKeyCallback = cb
	return auth, nil
}

// CreateRepo creates the bare repository name on the server with one commit holding files
// (path → content) on branch, which becomes the repository's HEAD. It returns the ssh URL.
func (g *GitServer) CreateRepo(name, branch string, files map[string]string) (string, error) {
	path := g.RepoPath(name)
	bare, err := gogit.PlainInit(path, true)
	if err != nil {
		return "", fmt.Errorf("create repo %s: %w", name, err)
	}
	if err := bare.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(branch))); err != nil {
		return "", err
	}
	// No housekeeping behind the tests' backs: receive-pack's `git gc --auto` detaches and
	// may still be writing in the repository when the test removes its directory.
	cfg, err := bare.Config()
	if err != nil {
		return "", err
	}
	cfg.Raw.Section("receive").SetOption("autogc", "false")
	cfg.Raw.Section("gc").SetOption("auto", "0")
	cfg.Raw.Section("maintenance").SetOption("auto", "false")
	if err := bare.SetConfig(cfg); err != nil {
		return "", err
	}
	if len(files) > 0 {
		if _, err := CommitFiles(path, branch, files, "initial commit"); err != nil {
			return "", err
		}
	}
	return g.URL(name), nil
}

// CommitFiles commits files (path → content; empty content deletes the file) on top of
// branch of the bare repository at repoPath, as a person with direct access would, and
// returns the new commit. It works on the repository's files, not through sshd.
func CommitFiles(repoPath, branch string, files map[string]string, msg string) (plumbing.Hash, error) {
	wt := memfs.New()
	repo, err := gogit.Init(memory.NewStorage(), wt)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{repoPath}}); err != nil {
		return plumbing.ZeroHash, err
	}
	ref := plumbing.NewBranchReferenceName(branch)
	err = repo.Fetch(&gogit.FetchOptions{RefSpecs: []config.RefSpec{config.RefSpec("+" + ref + ":" + ref)}})
	switch {
	case err == nil || errors.Is(err, gogit.NoErrAlreadyUpToDate):
		if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, ref)); err != nil {
			return plumbing.ZeroHash, err
		}
		w, err := repo.Worktree()
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if err := w.Checkout(&gogit.CheckoutOptions{Branch: ref}); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("check out %s: %w", branch, err)
		}
	case isEmptyRemote(err):
		if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, ref)); err != nil {
			return plumbing.ZeroHash, err
		}
	default:
		return plumbing.ZeroHash, fmt.Errorf("fetch %s of %s: %w", branch, repoPath, err)
	}
	w, err := repo.Worktree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	for p, content := range files {
		if content == "" {
			if _, err := w.Remove(p); err != nil {
				return plumbing.ZeroHash, fmt.Errorf("remove %s: %w", p, err)
			}
			continue
		}
		if err := wt.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return plumbing.ZeroHash, err
		}
		f, err := wt.Create(p)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if _, err := io.WriteString(f, content); err != nil {
			return plumbing.ZeroHash, err
		}
		if err := f.Close(); err != nil {
			return plumbing.ZeroHash, err
		}
		if _, err := w.Add(p); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	sig := &object.Signature{Name: "A Human", Email: "human@example.com", When: time.Now()}
	h, err := w.Commit(msg, &gogit.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	err = repo.Push(&gogit.PushOptions{RefSpecs: []config.RefSpec{config.RefSpec(ref + ":" + ref)}})
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("push %s to %s: %w", branch, repoPath, err)
	}
	return h, nil
}

func isEmptyRemote(err error) bool {
	return errors.Is(err, transport.ErrEmptyRemoteRepository) || errors.Is(err, gogit.NoMatchingRefSpecError{}) ||
		strings.Contains(err.Error(), "couldn't find remote ref")
}

// ReadFile returns the content of path at the tip of branch in the bare repository repoPath.
func ReadFile(repoPath, branch, path string) (string, error) {
	c, err := Head(repoPath, branch)
	if err != nil {
		return "", err
	}
	f, err := c.File(path)
	if err != nil {
		return "", fmt.Errorf("read %s at %s of %s: %w", path, branch, repoPath, err)
	}
	return f.Contents()
}

// Head returns the commit at the tip of branch in the bare repository repoPath.
func Head(repoPath, branch string) (*object.Commit, error) {
	repo, err := gogit.PlainOpen(repoPath)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", repoPath, err)
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", branch, repoPath, err)
	}
	return repo.CommitObject(ref.Hash())
}

// Log returns the commits reachable from branch in the bare repository, newest first.
func Log(repoPath, branch string) ([]*object.Commit, error) {
	c, err := Head(repoPath, branch)
	if err != nil {
		return nil, err
	}
	var out []*object.Commit
	err = object.NewCommitPreorderIter(c, nil, nil).ForEach(func(c *object.Commit) error {
		out = append(out, c)
		return nil
	})
	return out, err
}

// ResetBranch points branch of the bare repository at commit, as `git reset --hard commit`
// followed by `git push -f` would: the way users roll back.
func ResetBranch(repoPath, branch string, commit plumbing.Hash) error {
	repo, err := gogit.PlainOpen(repoPath)
	if err != nil {
		return fmt.Errorf("open %s: %w", repoPath, err)
	}
	return repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(branch), commit))
}
