package git

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/utils/merkletrie"
)

// WorkDir is the working tree's directory: the files of the last commit Update or Checkout
// brought it to.
func (r *Repo) WorkDir() string { return filepath.Join(r.opts.Dir, "work") }

func (r *Repo) statePath() string { return filepath.Join(r.opts.Dir, "work.json") }

// workState is what the working tree holds.
type workState struct {
	Commit string `json:"commit"`
	// Editing is set while an edit is in flight: a working tree found in that state after a
	// crash may hold stray edits and is checked out afresh.
	Editing bool `json:"editing"`
}

func (r *Repo) readState() workState {
	var s workState
	b, err := os.ReadFile(r.statePath())
	if err != nil || json.Unmarshal(b, &s) != nil {
		return workState{}
	}
	return s
}

func (r *Repo) writeState(s workState) error {
	b, _ := json.Marshal(s)
	tmp := r.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	return os.Rename(tmp, r.statePath())
}

// Checkout fetches and brings the working tree to the remote head, which it returns. A
// mirror found broken on the way (objects lost from the disk under a running daemon) is
// cloned again, with a warning.
func (r *Repo) Checkout(ctx context.Context) (plumbing.Hash, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	head, err := r.fetchAndMove(ctx)
	if err == nil || ctx.Err() != nil {
		return head, err
	}
	verr := r.verifyMirror()
	if verr == nil {
		return head, err
	}
	r.warn(fmt.Sprintf("mirror %s broken (%v): cloning again", r.mirrorDir(), verr))
	if ierr := r.initMirror(); ierr != nil {
		return plumbing.ZeroHash, errors.Join(err, ierr)
	}
	r.lastFetch, r.lastHead = time.Time{}, plumbing.ZeroHash
	return r.fetchAndMove(ctx)
}

func (r *Repo) fetchAndMove(ctx context.Context) (plumbing.Hash, error) {
	head, err := r.fetch(ctx)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return head, r.moveWorkTree(ctx, head)
}

// verifyMirror checks that the fetched head, its tree and every object under it are in the
// mirror on disk (read afresh: the open repository's caches may still hold what the disk
// lost).
func (r *Repo) verifyMirror() error {
	repo, err := gogit.PlainOpen(r.mirrorDir())
	if err != nil {
		return err
	}
	ref, err := repo.Reference(r.trackingRef(), true)
	if err != nil {
		return nil // nothing fetched: nothing to check
	}
	c, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return fmt.Errorf("head %s: %w", ref.Hash(), err)
	}
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("tree of %s: %w", ref.Hash(), err)
	}
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, entry, err := walker.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tree of %s: %w", ref.Hash(), err)
		}
		if err := repo.Storer.HasEncodedObject(entry.Hash); err != nil {
			return fmt.Errorf("%s (%s): %w", name, entry.Hash, err)
		}
	}
}

// moveWorkTree brings the working tree to commit to: by the difference from the commit it
// holds when that is known and clean, else by a fresh checkout.
func (r *Repo) moveWorkTree(ctx context.Context, to plumbing.Hash) error {
	st := r.readState()
	if st.Commit == to.String() && !st.Editing {
		return nil
	}
	toTree, err := r.tree(to)
	if err != nil {
		return err
	}
	if st.Commit != "" && !st.Editing {
		if fromTree, err := r.tree(plumbing.NewHash(st.Commit)); err == nil {
			if err := r.applyDiff(ctx, fromTree, toTree); err == nil {
				return r.writeState(workState{Commit: to.String()})
			} else {
				r.warn(fmt.Sprintf("working tree: incremental update %s..%s failed (%v): checking out afresh", st.Commit[:12], to.String()[:12], err))
			}
		}
	} else if st.Editing {
		r.warn("working tree: an edit was interrupted: checking out afresh")
	}
	// Until the checkout completes the tree holds no known commit: a checkout that fails
	// half-way (a lost object) must not leave a state that the next run trusts.
	if err := r.writeState(workState{}); err != nil {
		return err
	}
	if err := r.fullCheckout(toTree); err != nil {
		return err
	}
	return r.writeState(workState{Commit: to.String()})
}

func (r *Repo) tree(commit plumbing.Hash) (*object.Tree, error) {
	c, err := r.repo.CommitObject(commit)
	if err != nil {
		return nil, fmt.Errorf("git %s: read commit %s: %w", r.opts.URL, commit, err)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("git %s: read tree of %s: %w", r.opts.URL, commit, err)
	}
	return t, nil
}

// fullCheckout replaces the working tree with the files of tree.
func (r *Repo) fullCheckout(tree *object.Tree) error {
	dir := r.WorkDir()
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("check out: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("check out: %w", err)
	}
	return tree.Files().ForEach(func(f *object.File) error { return r.writeFile(f.Name, f.Mode, &f.Blob) })
}

// applyDiff rewrites the files that differ between two trees.
func (r *Repo) applyDiff(ctx context.Context, from, to *object.Tree) error {
	changes, err := object.DiffTreeWithOptions(ctx, from, to, nil)
	if err != nil {
		return err
	}
	for _, ch := range changes {
		action, err := ch.Action()
		if err != nil {
			return err
		}
		if action == merkletrie.Delete || (action == merkletrie.Modify && ch.From.Name != ch.To.Name) {
			if err := r.removeFile(ch.From.Name); err != nil {
				return err
			}
		}
		if action == merkletrie.Insert || action == merkletrie.Modify {
			blob, err := r.repo.BlobObject(ch.To.TreeEntry.Hash)
			if err != nil {
				if ch.To.TreeEntry.Mode == filemode.Submodule {
					continue
				}
				return err
			}
			if err := r.writeFile(ch.To.Name, ch.To.TreeEntry.Mode, blob); err != nil {
				return err
			}
		}
	}
	return nil
}

// restoreFiles puts the named files back as they are in tree (removing those it lacks).
func (r *Repo) restoreFiles(tree *object.Tree, paths []string) error {
	for _, p := range paths {
		f, err := tree.File(p)
		switch {
		case errors.Is(err, object.ErrFileNotFound):
			if err := r.removeFile(p); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if err := r.writeFile(p, f.Mode, &f.Blob); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Repo) workPath(name string) (string, error) {
	clean := filepath.Clean(filepath.FromSlash(name))
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("path %q leaves the working tree", name)
	}
	return filepath.Join(r.WorkDir(), clean), nil
}

func (r *Repo) writeFile(name string, mode filemode.FileMode, blob *object.Blob) error {
	if mode == filemode.Submodule {
		return nil
	}
	path, err := r.workPath(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	rd, err := blob.Reader()
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer rd.Close()
	_ = os.Remove(path) // a symlink or a file of another mode may be there
	if mode == filemode.Symlink {
		target, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		return os.Symlink(string(target), path)
	}
	perm := os.FileMode(0o644)
	if mode == filemode.Executable {
		perm = 0o755
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rd); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return f.Close()
}

func (r *Repo) removeFile(name string) error {
	path, err := r.workPath(name)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Remove directories left empty, up to the working tree's root.
	for dir := filepath.Dir(path); dir != r.WorkDir() && strings.HasPrefix(dir, r.WorkDir()); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}
