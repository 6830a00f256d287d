package sync

import (
	"fmt"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// confinedFS is the on-disk filesystem as kustomize sees it, with every read confined to root
// (symlinks resolved) and every write refused: a kustomization in git cannot make imagebot
// read /etc or a file of another checkout, nor write anywhere.
type confinedFS string

var _ filesys.FileSystem = confinedFS("")

var disk = filesys.MakeFsOnDisk()

func (root confinedFS) check(p string) error {
	abs, err := filepath.Abs(p)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	rel, err := filepath.Rel(string(root), abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%s is outside the checkout", p)
	}
	return nil
}

func errReadOnly(p string) error { return fmt.Errorf("%s: the checkout is read-only to kustomize", p) }

func (root confinedFS) Create(p string) (filesys.File, error) { return nil, errReadOnly(p) }
func (root confinedFS) Mkdir(p string) error                  { return errReadOnly(p) }
func (root confinedFS) MkdirAll(p string) error               { return errReadOnly(p) }
func (root confinedFS) RemoveAll(p string) error              { return errReadOnly(p) }
func (root confinedFS) WriteFile(p string, _ []byte) error    { return errReadOnly(p) }

func (root confinedFS) Open(p string) (filesys.File, error) {
	if err := root.check(p); err != nil {
		return nil, err
	}
	return disk.Open(p)
}

func (root confinedFS) IsDir(p string) bool { return root.check(p) == nil && disk.IsDir(p) }

func (root confinedFS) ReadDir(p string) ([]string, error) {
	if err := root.check(p); err != nil {
		return nil, err
	}
	return disk.ReadDir(p)
}

func (root confinedFS) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	if err := root.check(p); err != nil {
		return "", "", err
	}
	return disk.CleanedAbs(p)
}

func (root confinedFS) Exists(p string) bool { return root.check(p) == nil && disk.Exists(p) }

func (root confinedFS) Glob(pattern string) ([]string, error) {
	matches, err := disk.Glob(pattern)
	if err != nil {
		return nil, err
	}
	out := matches[:0]
	for _, m := range matches {
		if root.check(m) == nil {
			out = append(out, m)
		}
	}
	return out, nil
}

func (root confinedFS) ReadFile(p string) ([]byte, error) {
	if err := root.check(p); err != nil {
		return nil, err
	}
	return disk.ReadFile(p)
}

func (root confinedFS) Walk(p string, walkFn filepath.WalkFunc) error {
	if err := root.check(p); err != nil {
		return err
	}
	return disk.Walk(p, walkFn)
}
