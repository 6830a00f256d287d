package update

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// pendingWrite is an edited file waiting to be written.
type pendingWrite struct {
	file     string // repository-relative
	path     string // on disk
	old, new []byte
	mode     fs.FileMode
}

// Apply edits the files of the checkout at root so that every decided target holds its new
// image, and returns what changed. All edits are computed and verified before any file is
// written; files are written atomically (temp file in the same directory, fsync, rename,
// file mode kept), and if a write fails the files already written are put back. On error
// no file is changed.
func (f *Finder) Apply(ctx context.Context, root string, decisions []Decision) (*ChangeSet, error) {
	byFile := map[string][]Decision{}
	for _, d := range decisions {
		byFile[d.Target.File] = append(byFile[d.Target.File], d)
	}
	files := make([]string, 0, len(byFile))
	for file := range byFile {
		files = append(files, file)
	}
	sort.Strings(files)
	cs := &ChangeSet{}
	var pending []pendingWrite
	var errs []error
	for _, file := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, data, err := readRepoFile(root, file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out, changes, err := f.EditBytes(file, data.data, byFile[file])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !bytes.Equal(out, data.data) {
			pending = append(pending, pendingWrite{file: file, path: p, old: data.data, new: out, mode: data.mode})
			cs.Changes = append(cs.Changes, changes...)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("update %s: %w", root, errors.Join(errs...))
	}
	if err := writeAll(ctx, pending); err != nil {
		return nil, fmt.Errorf("update %s: %w", root, err)
	}
	cs.sort()
	return cs, nil
}

type fileData struct {
	data []byte
	mode fs.FileMode
}

// readRepoFile reads a repository-relative file, refusing symlinks and paths that leave
// the repository.
func readRepoFile(root, file string) (string, fileData, error) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fileData{}, err
	}
	realRoot, _ = filepath.Abs(realRoot)
	p := filepath.Join(realRoot, filepath.FromSlash(file))
	if !within(realRoot, p) {
		return "", fileData{}, &EditError{File: file, Err: ErrSymlink}
	}
	info, err := os.Lstat(p)
	if err != nil {
		return "", fileData{}, &EditError{File: file, Err: err}
	}
	if !info.Mode().IsRegular() {
		return "", fileData{}, &EditError{File: file, Err: fmt.Errorf("%w: not a regular file", ErrSymlink)}
	}
	if real, err := filepath.EvalSymlinks(filepath.Dir(p)); err != nil || !within(realRoot, real) {
		return "", fileData{}, &EditError{File: file, Err: ErrSymlink}
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return "", fileData{}, &EditError{File: file, Err: err}
	}
	return p, fileData{data: data, mode: info.Mode().Perm()}, nil
}

// writeAll writes the pending files atomically, one by one; if one fails, those already
// written get their old content back.
func writeAll(ctx context.Context, pending []pendingWrite) error {
	for i, p := range pending {
		err := ctx.Err()
		if err == nil {
			err = writeAtomic(p.path, p.new, p.mode)
		}
		if err != nil {
			errs := []error{fmt.Errorf("write %s: %w", p.file, err)}
			for _, done := range pending[:i] {
				if rerr := writeAtomic(done.path, done.old, done.mode); rerr != nil {
					errs = append(errs, fmt.Errorf("restore %s: %w", done.file, rerr))
				}
			}
			return errors.Join(errs...)
		}
	}
	return nil
}

// writeAtomic replaces path with data: a temp file in the same directory, fsync, chmod,
// rename, fsync of the directory.
func writeAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	tmp, err := os.CreateTemp(dir, "."+base+".imagebot-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // best effort: the rename is durable once the directory is
		d.Close()
	}
	return nil
}
