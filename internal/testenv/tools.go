package testenv

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

var (
	toolsOnce sync.Once
	toolsDir  string
	toolsErr  error
)

// RepoRoot returns the root of the imagebot checkout: $IMAGEBOT_ROOT, or the nearest parent of
// the working directory whose go.mod declares module imagebot.dev/imagebot.
func RepoRoot() (string, error) {
	if r := os.Getenv("IMAGEBOT_ROOT"); r != "" {
		return r, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module imagebot.dev/imagebot\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find the imagebot checkout: no go.mod of imagebot.dev/imagebot above the working directory (set IMAGEBOT_ROOT)")
		}
		dir = parent
	}
}

// BinDir returns the directory holding the test world's binaries: $IMAGEBOT_BIN_DIR when set
// (the Makefile sets it after running hack/tools.sh), else the output of hack/tools.sh, run once
// per process to install or build whatever is missing (fast when everything is cached).
func BinDir() (string, error) {
	toolsOnce.Do(func() {
		if d := os.Getenv("IMAGEBOT_BIN_DIR"); d != "" {
			toolsDir = d
			return
		}
		root, err := RepoRoot()
		if err != nil {
			toolsErr = err
			return
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("bash", filepath.Join(root, "hack", "tools.sh"))
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			toolsErr = fmt.Errorf("prepare test binaries: bash hack/tools.sh: %w\n%s", err, stderr.String())
			return
		}
		toolsDir = strings.TrimSpace(stdout.String())
	})
	return toolsDir, toolsErr
}

// binary returns the path of a test-world binary: from BinDir, else from PATH or the given
// absolute fallbacks (Debian's packages install etcd, docker-registry and sshd outside PATH
// for non-root users).
func binary(name string, fallbacks ...string) (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	if p := filepath.Join(dir, name); isExec(p) {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, p := range fallbacks {
		if isExec(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s, PATH or %v: run `bash hack/tools.sh` (as root it installs Debian packages)", name, dir, fallbacks)
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
