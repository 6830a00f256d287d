package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"imagebot.dev/imagebot/internal/policy"
)

// DefaultMaxFileSize is the size above which a file is skipped (with a warning).
const DefaultMaxFileSize = 4 << 20 // 4 MiB

// Finder finds automation targets in a checkout and edits them. Its zero value is ready to
// use. Do not change its fields after the first call: results are cached by file content
// for the Finder's lifetime.
type Finder struct {
	// Paths are the repository-relative directories or files to walk; nil means the whole
	// repository. A path that leaves the repository is an error.
	Paths []string
	// MaxFileSize skips larger files with a warning; 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// Markers resolves the names in Flux v2 "$imagepolicy" markers ("namespace:name").
	Markers map[string]MarkerPolicy
	// ValidatePolicy checks a policy spec; nil means policy.Parse.
	ValidatePolicy func(spec string) error
	// Workers is the number of files parsed at once; 0 means GOMAXPROCS.
	Workers int
	// NoCache turns off the cache of per-file results (keyed by content hash).
	NoCache bool

	mu       sync.Mutex
	cache    map[string]cacheEntry // file -> last result
	policies sync.Map              // spec -> error (validation cache)
}

type cacheEntry struct {
	sum    [sha256.Size]byte
	result fileResult
}

// Result is what Find found.
type Result struct {
	Targets  []Target  // sorted by file, then line
	Problems []Problem // sorted by file, then line
	Files    int       // YAML files read
}

// Find walks the configured paths of the checkout at root and returns every target and
// every problem. Only a failure to walk the checkout itself is an error; a bad file is a
// Problem and the others are still scanned.
func (f *Finder) Find(ctx context.Context, root string) (*Result, error) {
	files, probs, err := f.walk(ctx, root)
	if err != nil {
		return nil, err
	}
	results := make([]fileResult, len(files))
	fresh := make(map[string]cacheEntry, len(files))
	workers := f.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	parallel(ctx, len(files), workers, func(i int) { results[i] = f.scanFile(root, files[i], fresh) })
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !f.NoCache {
		f.mu.Lock()
		f.cache = fresh // entries of files that are gone are dropped
		f.mu.Unlock()
	}
	res := &Result{Problems: probs, Files: len(files)}
	n := 0
	for _, r := range results {
		n += len(r.targets)
	}
	res.Targets = make([]Target, 0, n)
	for _, r := range results {
		res.Targets = append(res.Targets, r.targets...)
		res.Problems = append(res.Problems, r.problems...)
	}
	sort.SliceStable(res.Problems, func(i, j int) bool {
		a, b := res.Problems[i], res.Problems[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return res, nil
}

// FindBytes finds the targets in one file's content; file is its repository-relative name.
func (f *Finder) FindBytes(file string, data []byte) ([]Target, []Problem) {
	r := f.scanBytes(file, data, true).done()
	return r.targets, r.problems
}

// fileResult is what Find keeps of a file's scan: the targets without their parsed nodes
// (so the trees are garbage as soon as a file is done), and the problems.
type fileResult struct {
	targets  []Target
	problems []Problem
}

// done takes the result and releases the parse trees.
func (s fileScan) done() fileResult {
	r := s.result()
	s.pf.release()
	return r
}

func (s fileScan) result() fileResult {
	r := fileResult{problems: s.problems}
	if len(s.targets) > 0 {
		r.targets = make([]Target, len(s.targets))
		for i, t := range s.targets {
			r.targets[i] = t.Target
		}
	}
	return r
}

// scanFile reads and scans one file (repository-relative, slash-separated), using the
// cache when the content is unchanged, and records the result in fresh.
func (f *Finder) scanFile(root, file string, fresh map[string]cacheEntry) fileResult {
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
	if err != nil {
		return fileResult{problems: []Problem{{File: file, Err: err}}}
	}
	// Pre-filter: a file that mentions no image (nor a Flux v1 mapping annotation) has no
	// target; skip the parse.
	if !bytes.Contains(data, []byte("image")) && !bytes.Contains(data, []byte("fluxcd.io/")) {
		return fileResult{}
	}
	if f.NoCache {
		return f.scanBytes(file, data, true).done()
	}
	sum := sha256.Sum256(data)
	f.mu.Lock()
	e, ok := f.cache[file]
	f.mu.Unlock()
	if !ok || e.sum != sum {
		e = cacheEntry{sum: sum, result: f.scanBytes(file, data, true).done()}
	}
	f.mu.Lock()
	fresh[file] = e
	f.mu.Unlock()
	return e.result
}

// validate checks a policy spec once (results are cached).
func (f *Finder) validate(spec string) error {
	if v, ok := f.policies.Load(spec); ok {
		err, _ := v.(error)
		return err
	}
	var err error
	switch {
	case strings.TrimSpace(spec) == "":
		err = errors.New("empty")
	case f.ValidatePolicy != nil:
		err = f.ValidatePolicy(spec)
	case defaultValidatePolicy != nil:
		err = defaultValidatePolicy(spec)
	}
	f.policies.Store(spec, err)
	return err
}

// defaultValidatePolicy is used when Finder.ValidatePolicy is nil: the policy package's
// parser.
var defaultValidatePolicy = func(spec string) error {
	_, err := policy.Parse(spec)
	return err
}

// walk lists the YAML files (repository-relative, slash-separated, sorted) under the
// configured paths, skipping .git, Helm chart templates, large files and symlinks.
func (f *Finder) walk(ctx context.Context, root string) ([]string, []Problem, error) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, nil, fmt.Errorf("find targets in %s: %w", root, err)
	}
	realRoot, err = filepath.Abs(realRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("find targets in %s: %w", root, err)
	}
	paths := f.Paths
	if len(paths) == 0 {
		paths = []string{"."}
	}
	maxSize := f.MaxFileSize
	if maxSize <= 0 {
		maxSize = DefaultMaxFileSize
	}
	seen := map[string]bool{}
	var files []string
	var probs []Problem
	for _, p := range paths {
		start, err := insideRoot(realRoot, p)
		if err != nil {
			return nil, nil, fmt.Errorf("find targets in %s: path %q: %w", root, p, err)
		}
		err = filepath.WalkDir(start, func(path string, d fs.DirEntry, err error) error {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			rel, _ := filepath.Rel(realRoot, path)
			rel = filepath.ToSlash(rel)
			if err != nil {
				probs = append(probs, Problem{File: rel, Err: err})
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				if d.Name() == ".git" || isChartTemplates(path, d.Name()) {
					return fs.SkipDir
				}
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				// Never follow a symlink: what it points to is read where it lives (if that is
				// under Paths). One to a directory or YAML file outside the repository is
				// reported.
				target, err := filepath.EvalSymlinks(path)
				if err != nil || !within(realRoot, target) {
					if info, serr := os.Stat(path); err != nil || serr != nil || info.IsDir() || isYAMLName(d.Name()) {
						probs = append(probs, Problem{File: rel, Err: ErrSymlink, Warning: true})
					}
				}
				return nil
			}
			if !isYAMLName(d.Name()) {
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				probs = append(probs, Problem{File: rel, Err: err})
				return nil
			}
			if info.Size() > maxSize {
				probs = append(probs, Problem{File: rel, Warning: true, Err: fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, info.Size(), maxSize)})
				return nil
			}
			if !seen[rel] {
				seen[rel] = true
				files = append(files, rel)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("find targets in %s: %w", root, err)
		}
	}
	sort.Strings(files)
	return files, probs, nil
}

// insideRoot resolves a configured path below realRoot, refusing one that leaves it.
func insideRoot(realRoot, p string) (string, error) {
	if filepath.IsAbs(p) {
		return "", errors.New("must be relative to the repository")
	}
	joined := filepath.Join(realRoot, filepath.FromSlash(p))
	real, err := filepath.EvalSymlinks(joined)
	if err != nil {
		return "", err
	}
	if !within(realRoot, real) {
		return "", ErrSymlink
	}
	return real, nil
}

// within reports whether path is realRoot or below it.
func within(realRoot, path string) bool {
	rel, err := filepath.Rel(realRoot, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func isYAMLName(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// isChartTemplates reports whether dir is the templates (or charts) directory of a Helm
// chart: Go templates, not YAML.
func isChartTemplates(path, name string) bool {
	if name != "templates" && name != "charts" {
		return false
	}
	_, err := os.Stat(filepath.Join(filepath.Dir(path), "Chart.yaml"))
	return err == nil
}
