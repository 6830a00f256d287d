package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/yaml"
)

// ErrRender wraps every error of Read and Render: a failed render never reaches apply or prune.
var ErrRender = errors.New("render")

// maxManifestSize bounds one manifest file (bytes).
const maxManifestSize = 8 << 20

// Read reads the manifests at paths (relative to dir; "" or "." is dir itself) in order. A path
// that holds a kustomization file is built with kustomize; any other directory is walked
// recursively in lexical order, reading *.yaml, *.yml and *.json files and building
// subdirectories that hold a kustomization file instead of reading them. Hidden files and
// directories are skipped. Two objects with the same identity are an error naming both files.
// Namespaces are left as written (see Render).
func Read(dir string, paths []string) ([]*unstructured.Unstructured, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	r := &reader{root: root, seen: map[ObjectRef]string{}}
	for _, p := range paths {
		full, err := r.confine(filepath.Join(root, filepath.FromSlash(p)))
		if err != nil {
			return nil, fmt.Errorf("%w: path %q: %w", ErrRender, p, err)
		}
		fi, err := os.Stat(full)
		if err != nil {
			return nil, fmt.Errorf("%w: path %q: %w", ErrRender, p, err)
		}
		if fi.IsDir() {
			err = r.dir(full)
		} else {
			err = r.file(full)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRender, err)
		}
	}
	return r.objs, nil
}

type reader struct {
	root string
	objs []*unstructured.Unstructured
	seen map[ObjectRef]string // identity → where it came from
}

// confine resolves symlinks in p and fails unless the result is inside the checkout.
func (r *reader) confine(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(r.root, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%s is outside the checkout", p)
	}
	return real, nil
}

func (r *reader) rel(p string) string {
	if rel, err := filepath.Rel(r.root, p); err == nil {
		return filepath.ToSlash(rel)
	}
	return p
}

func kustomizationIn(dir string) bool {
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && !fi.IsDir() {
			return true
		}
	}
	return false
}

func (r *reader) dir(dir string) error {
	if kustomizationIn(dir) {
		return r.kustomize(dir)
	}
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if e.Type()&fs.ModeSymlink != 0 {
			real, err := r.confine(p)
			if err != nil {
				return fmt.Errorf("%s: %w", r.rel(p), err)
			}
			fi, err := os.Stat(real)
			if err != nil {
				return err
			}
			if fi.IsDir() {
				continue // symlinked directories are not followed (no cycles)
			}
		}
		if e.IsDir() {
			if err := r.dir(p); err != nil {
				return err
			}
			continue
		}
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
			if err := r.file(p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *reader) file(p string) error {
	real, err := r.confine(p)
	if err != nil {
		return err
	}
	f, err := os.Open(real)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return fmt.Errorf("%s: %w", r.rel(p), err)
	}
	if len(data) > maxManifestSize {
		return fmt.Errorf("%s: larger than %d bytes", r.rel(p), maxManifestSize)
	}
	objs, err := decodeManifests(data)
	if err != nil {
		return fmt.Errorf("%s: %w", r.rel(p), err)
	}
	return r.add(objs, r.rel(p))
}

func (r *reader) add(objs []*unstructured.Unstructured, source string) error {
	for _, o := range objs {
		ref := RefOf(o)
		if prev, dup := r.seen[ref]; dup {
			return fmt.Errorf("%s: %s is declared twice (also in %s)", source, ref, prev)
		}
		r.seen[ref] = source
		r.objs = append(r.objs, o)
	}
	return nil
}

// decodeManifests decodes a multi-document YAML (or JSON) stream. Errors name the line where
// the document starts.
func decodeManifests(data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, d := range splitDocuments(data) {
		if len(bytes.TrimSpace(stripComments(d.body))) == 0 {
			continue
		}
		objs, err := decodeDocument(d.body)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", d.line, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

type document struct {
	line int // 1-based line of the document's first line
	body []byte
}

// splitDocuments splits a YAML stream at "---" lines (which may carry a comment), keeping
// each document's first line number.
func splitDocuments(data []byte) []document {
	var docs []document
	start, line := 0, 1
	cur := document{line: 1}
	for start < len(data) {
		end := bytes.IndexByte(data[start:], '\n')
		next := len(data)
		if end >= 0 {
			next = start + end + 1
		}
		l := bytes.TrimRight(data[start:next], "\r\n")
		if rest, ok := bytes.CutPrefix(l, []byte("---")); ok {
			if t := bytes.TrimSpace(rest); len(t) == 0 || t[0] == '#' {
				docs = append(docs, cur)
				cur = document{line: line + 1}
				start, line = next, line+1
				continue
			}
		}
		cur.body = append(cur.body, data[start:next]...)
		start, line = next, line+1
	}
	return append(docs, cur)
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.Split(doc, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func decodeDocument(doc []byte) ([]*unstructured.Unstructured, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil, nil
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		return nil, err
	}
	if u.IsList() {
		list, err := u.ToList()
		if err != nil {
			return nil, err
		}
		var out []*unstructured.Unstructured
		for i := range list.Items {
			if err := validate(&list.Items[i]); err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out = append(out, &list.Items[i])
		}
		return out, nil
	}
	if err := validate(u); err != nil {
		return nil, err
	}
	return []*unstructured.Unstructured{u}, nil
}

func validate(u *unstructured.Unstructured) error {
	switch {
	case u.GetAPIVersion() == "":
		return fmt.Errorf("%s %q: missing apiVersion", u.GetKind(), u.GetName())
	case u.GetKind() == "":
		return fmt.Errorf("%q: missing kind", u.GetName())
	case u.GetName() == "" && u.GetGenerateName() == "":
		return fmt.Errorf("%s: missing metadata.name", u.GetKind())
	case u.GetName() == "":
		return fmt.Errorf("%s: metadata.generateName is not supported (objects need a name to be reconciled)", u.GetKind())
	}
	return nil
}

// kustomize builds the kustomization in dir with krusty on the on-disk filesystem, reads
// confined to the checkout.
func (r *reader) kustomize(dir string) error {
	if err := refuseRemote(dir, map[string]bool{}); err != nil {
		return fmt.Errorf("kustomize build %s: %w", r.rel(dir), err)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(confinedFS(r.root), dir)
	if err != nil {
		return fmt.Errorf("kustomize build %s: %w", r.rel(dir), err)
	}
	var objs []*unstructured.Unstructured
	for _, res := range rm.Resources() {
		js, err := res.MarshalJSON()
		if err != nil {
			return fmt.Errorf("kustomize build %s: %w", r.rel(dir), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return fmt.Errorf("kustomize build %s: %w", r.rel(dir), err)
		}
		if err := validate(u); err != nil {
			return fmt.Errorf("kustomize build %s: %w", r.rel(dir), err)
		}
		objs = append(objs, u)
	}
	return r.add(objs, r.rel(dir)+" (kustomize)")
}

// Render reads the manifests (see Read) and gives namespaced objects without a namespace
// defaultNamespace ("default" when empty). Whether a kind is namespaced is asked of the
// cluster's discovery, or of a CRD in the same render.
func (m *Manager) Render(ctx context.Context, dir string, paths []string, defaultNamespace string) ([]*unstructured.Unstructured, error) {
	objs, err := Read(dir, paths)
	if err != nil {
		return nil, err
	}
	if err := m.SetNamespaces(ctx, objs, defaultNamespace); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRender, err)
	}
	return objs, nil
}

// SetNamespaces sets the namespace of namespaced objects that have none to defaultNamespace
// ("default" when empty) and clears it on cluster-scoped ones. Errors name each object whose
// kind is unknown.
func (m *Manager) SetNamespaces(ctx context.Context, objs []*unstructured.Unstructured, defaultNamespace string) error {
	if defaultNamespace == "" {
		defaultNamespace = "default"
	}
	crdScopes := scopesFromCRDs(objs)
	var errs []error
	seen := map[ObjectRef]bool{}
	for _, o := range objs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		namespaced, err := m.namespaced(o, crdScopes)
		if err != nil {
			errs = append(errs, objErr(RefOf(o), "", err))
			continue
		}
		switch {
		case namespaced && o.GetNamespace() == "":
			o.SetNamespace(defaultNamespace)
		case !namespaced && o.GetNamespace() != "":
			o.SetNamespace("")
		}
		ref := RefOf(o)
		if seen[ref] {
			errs = append(errs, objErrf(ref, "declared twice"))
		}
		seen[ref] = true
	}
	return errors.Join(errs...)
}

func (m *Manager) namespaced(o *unstructured.Unstructured, crdScopes map[string]bool) (bool, error) {
	gvk := o.GroupVersionKind()
	mp, err := m.mapping(gvk)
	if err == nil {
		return mp.Scope.Name() == meta.RESTScopeNameNamespace, nil
	}
	if !meta.IsNoMatchError(err) {
		return false, err
	}
	if ns, ok := crdScopes[gvk.Group+"/"+gvk.Kind]; ok {
		return ns, nil
	}
	return false, fmt.Errorf("%w: %s", errUnknownKind, gvk)
}

// scopesFromCRDs maps "group/Kind" of each CRD in objs to whether it is namespaced.
func scopesFromCRDs(objs []*unstructured.Unstructured) map[string]bool {
	out := map[string]bool{}
	for _, o := range objs {
		if !isCRD(o.GroupVersionKind().GroupKind()) {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
		out[group+"/"+kind] = scope != "Cluster"
	}
	return out
}

// sortedCopy returns objs in apply order without touching objs.
func sortedCopy(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := slices.Clone(objs)
	slices.SortStableFunc(out, func(a, b *unstructured.Unstructured) int {
		ra, rb := RefOf(a), RefOf(b)
		return compareKeys(sortKey{stageOf(ra.GroupKind(), false), kindRank(ra.Kind), ra},
			sortKey{stageOf(rb.GroupKind(), false), kindRank(rb.Kind), rb})
	})
	return out
}
