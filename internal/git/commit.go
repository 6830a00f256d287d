package git

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// fileUpdate is a path's new content in a commit: a blob and mode, or a deletion.
type fileUpdate struct {
	hash   plumbing.Hash
	mode   filemode.FileMode
	delete bool
}

// commitFiles commits the working tree's versions of paths on top of parent and returns the
// new commit, or the zero hash when the files are as parent has them (no empty commits),
// and the objects it stored (what a push must send).
func (r *Repo) commitFiles(parent plumbing.Hash, paths []string, msg string) (plumbing.Hash, []plumbing.Hash, error) {
	var stored []plumbing.Hash
	commit, err := r.buildCommit(parent, paths, msg, &stored)
	return commit, stored, err
}

func (r *Repo) buildCommit(parent plumbing.Hash, paths []string, msg string, stored *[]plumbing.Hash) (plumbing.Hash, error) {
	parentCommit, err := r.repo.CommitObject(parent)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read commit %s: %w", parent, err)
	}
	base, err := parentCommit.Tree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	updates := map[string]fileUpdate{}
	for _, p := range paths {
		u, err := r.storeWorkFile(base, p, stored)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		updates[p] = u
	}
	treeHash, err := r.writeTree(base, updates, stored)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write tree: %w", err)
	}
	if treeHash == base.Hash {
		return plumbing.ZeroHash, nil
	}
	now := time.Now()
	c := &object.Commit{
		Author:       object.Signature{Name: r.opts.Author.Name, Email: r.opts.Author.Email, When: now},
		Committer:    object.Signature{Name: r.opts.Committer.Name, Email: r.opts.Committer.Email, When: now},
		Message:      msg,
		TreeHash:     treeHash,
		ParentHashes: []plumbing.Hash{parent},
	}
	if r.opts.SigningKey != nil {
		sig, err := signCommit(c, r.opts.SigningKey)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		c.PGPSignature = sig
	}
	obj := r.repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return r.store(obj, stored)
}

func (r *Repo) store(obj plumbing.EncodedObject, stored *[]plumbing.Hash) (plumbing.Hash, error) {
	h, err := r.repo.Storer.SetEncodedObject(obj)
	if err == nil {
		*stored = append(*stored, h)
	}
	return h, err
}

func signCommit(c *object.Commit, key *openpgp.Entity) (string, error) {
	unsigned := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(unsigned); err != nil {
		return "", err
	}
	rd, err := unsigned.Reader()
	if err != nil {
		return "", err
	}
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, key, rd, nil); err != nil {
		return "", fmt.Errorf("sign commit: %w", err)
	}
	return sig.String(), nil
}

// storeWorkFile stores the working tree's file p as a blob, keeping the mode base has for it.
func (r *Repo) storeWorkFile(base *object.Tree, p string, stored *[]plumbing.Hash) (fileUpdate, error) {
	full, err := r.workPath(p)
	if err != nil {
		return fileUpdate{}, err
	}
	st, err := os.Lstat(full)
	if errors.Is(err, os.ErrNotExist) {
		return fileUpdate{delete: true}, nil
	}
	if err != nil {
		return fileUpdate{}, err
	}
	var content []byte
	mode := filemode.Regular
	if st.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(full)
		if err != nil {
			return fileUpdate{}, err
		}
		content, mode = []byte(target), filemode.Symlink
	} else {
		if content, err = os.ReadFile(full); err != nil {
			return fileUpdate{}, err
		}
		if st.Mode()&0o111 != 0 {
			mode = filemode.Executable
		}
		if e, err := base.FindEntry(p); err == nil && e.Mode.IsFile() && e.Mode != filemode.Symlink {
			mode = e.Mode
		}
	}
	obj := r.repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		return fileUpdate{}, err
	}
	if _, err := w.Write(content); err != nil {
		return fileUpdate{}, err
	}
	if err := w.Close(); err != nil {
		return fileUpdate{}, err
	}
	h, err := r.store(obj, stored)
	return fileUpdate{hash: h, mode: mode}, err
}

// writeTree stores the trees of base with updates applied, rewriting only the trees along
// the updated paths, and returns the new root tree's hash (base's own hash when nothing
// changed). A directory left empty disappears, as git has no empty trees.
func (r *Repo) writeTree(base *object.Tree, updates map[string]fileUpdate, stored *[]plumbing.Hash) (plumbing.Hash, error) {
	entries := map[string]object.TreeEntry{}
	if base != nil {
		for _, e := range base.Entries {
			entries[e.Name] = e
		}
	}
	sub := map[string]map[string]fileUpdate{}
	for p, u := range updates {
		first, rest, nested := strings.Cut(p, "/")
		if !nested {
			if u.delete {
				delete(entries, first)
			} else {
				entries[first] = object.TreeEntry{Name: first, Mode: u.mode, Hash: u.hash}
			}
			continue
		}
		if sub[first] == nil {
			sub[first] = map[string]fileUpdate{}
		}
		sub[first][rest] = u
	}
	for dir, ups := range sub {
		var child *object.Tree
		if e, ok := entries[dir]; ok && e.Mode == filemode.Dir {
			t, err := r.repo.TreeObject(e.Hash)
			if err != nil {
				return plumbing.ZeroHash, fmt.Errorf("read tree %s: %w", dir, err)
			}
			child = t
		}
		h, err := r.writeTree(child, ups, stored)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if h.IsZero() {
			delete(entries, dir)
		} else {
			entries[dir] = object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: h}
		}
	}
	if len(entries) == 0 {
		return plumbing.ZeroHash, nil
	}
	t := &object.Tree{}
	for _, e := range entries {
		t.Entries = append(t.Entries, e)
	}
	// Git orders entries by name, a directory's name compared as if it ended in "/".
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(t.Entries, func(i, j int) bool { return key(t.Entries[i]) < key(t.Entries[j]) })
	obj := r.repo.Storer.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	if base != nil && obj.Hash() == base.Hash {
		return base.Hash, nil
	}
	return r.store(obj, stored)
}

// changedPaths is the slash-separated, de-duplicated list of files a change set touched.
func changedPaths(files []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		p := path.Clean(strings.ReplaceAll(f, "\\", "/"))
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
