package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Options chooses the parts of an environment.
type Options struct {
	Cluster   bool
	Registry  bool
	GitServer bool
	// RegistryOptions configures the registry when Registry is set.
	RegistryOptions RegistryOptions
}

// All is every part with default settings.
var All = Options{Cluster: true, Registry: true, GitServer: true}

// Env is a running test world. Absent parts are nil.
type Env struct {
	Dir      string
	Cluster  *Cluster
	Registry *Registry
	Git      *GitServer
}

// Start starts the chosen parts concurrently, each in a subdirectory of dir. On error,
// whatever started is stopped.
func Start(ctx context.Context, dir string, opts Options) (*Env, error) {
	if _, err := BinDir(); err != nil {
		return nil, err
	}
	e := &Env{Dir: dir}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	part := func(name string, start func(dir string) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := filepath.Join(dir, name)
			err := os.MkdirAll(sub, 0o755)
			if err == nil {
				err = start(sub)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("start %s: %w", name, err))
				mu.Unlock()
			}
		}()
	}
	if opts.Cluster {
		part("cluster", func(d string) (err error) { e.Cluster, err = StartCluster(ctx, d); return })
	}
	if opts.Registry {
		part("registry", func(d string) (err error) {
			e.Registry, err = StartRegistry(ctx, d, opts.RegistryOptions)
			return
		})
	}
	if opts.GitServer {
		part("git", func(d string) (err error) { e.Git, err = StartGitServer(ctx, d); return })
	}
	wg.Wait()
	if len(errs) > 0 {
		e.Stop()
		return nil, errors.Join(errs...)
	}
	return e, nil
}

// Stop stops every part that started.
func (e *Env) Stop() {
	if e.Git != nil {
		e.Git.Stop()
	}
	if e.Registry != nil {
		e.Registry.Stop()
	}
	if e.Cluster != nil {
		e.Cluster.Stop()
	}
}

// Pids returns the ids of every process the environment started.
func (e *Env) Pids() []int {
	var pids []int
	if e.Cluster != nil {
		pids = append(pids, e.Cluster.Pids()...)
	}
	if e.Registry != nil {
		pids = append(pids, e.Registry.Pids()...)
	}
	if e.Git != nil {
		pids = append(pids, e.Git.Pids()...)
	}
	return pids
}

// New starts an environment for a test in a fresh temp dir and stops it when the test ends.
// A part that cannot start fails the test with the reason (never a skip).
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Not t.TempDir: what the servers started (sshd's per-connection processes, which outlive
	// the listener by a moment and log their goodbyes) may still write in it when the test
	// ends, which makes the testing package's single RemoveAll fail the test.
	dir, err := os.MkdirTemp("", "imagebot-testenv-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	e, err := Start(ctx, dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		e.Stop()
		removeAll(t, dir)
	})
	return e
}

// removeAll removes dir, trying again for up to 5s while stray writers finish.
func removeAll(t testing.TB, dir string) {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("testenv: could not remove %s: %v", dir, err)
}
