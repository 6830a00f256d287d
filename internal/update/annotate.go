package update

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// AnnotationEdit changes the automation annotations of one workload (for the CLI:
// automate, deautomate, lock, unlock, policy). Nil and empty fields change nothing.
type AnnotationEdit struct {
	Workload Workload // Kind, Namespace ("" when the manifest sets none) and Name
	// Automated true sets automated: "true"; false removes every spelling of it.
	Automated *bool
	// Locked true sets locked: "true" (and locked_msg / locked_user when LockedMsg /
	// LockedUser are set); false removes locked, locked_msg and locked_user.
	Locked     *bool
	LockedMsg  string
	LockedUser string
	// Tags maps a container to its policy; "" removes the container's tag annotation
	// (every spelling, filter.fluxcd.io/ too).
	Tags map[string]string
}

// annotationOp sets (value != "") or removes one setting.
type annotationOp struct {
	suffix string // "automated", "locked_msg", "tag.<container>", …
	value  string
	remove bool
}

func (e AnnotationEdit) ops() []annotationOp {
	var ops []annotationOp
	if e.Automated != nil {
		ops = append(ops, annotationOp{suffix: "automated", value: "true", remove: !*e.Automated})
	}
	if e.Locked != nil {
		ops = append(ops, annotationOp{suffix: "locked", value: "true", remove: !*e.Locked})
		if !*e.Locked {
			ops = append(ops, annotationOp{suffix: "locked_msg", remove: true}, annotationOp{suffix: "locked_user", remove: true})
		} else {
			if e.LockedMsg != "" {
				ops = append(ops, annotationOp{suffix: "locked_msg", value: e.LockedMsg})
			}
			if e.LockedUser != "" {
				ops = append(ops, annotationOp{suffix: "locked_user", value: e.LockedUser})
			}
		}
	}
	containers := make([]string, 0, len(e.Tags))
	for c := range e.Tags {
		containers = append(containers, c)
	}
	sort.Strings(containers)
	for _, c := range containers {
		ops = append(ops, annotationOp{suffix: "tag." + c, value: e.Tags[c], remove: e.Tags[c] == ""})
	}
	return ops
}

// spellings returns every annotation key that means the op's setting.
func (op annotationOp) spellings() []string {
	var keys []string
	for _, p := range Prefixes {
		keys = append(keys, p+op.suffix)
	}
	if c, ok := strings.CutPrefix(op.suffix, "tag."); ok {
		keys = append(keys, FilterPrefix+c)
	}
	return keys
}

// Annotate applies an annotation edit to the one file of the checkout that declares the
// workload, and writes it atomically.
func (f *Finder) Annotate(ctx context.Context, root string, edit AnnotationEdit) (*ChangeSet, error) {
	files, _, err := f.walk(ctx, root)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, file := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
		if err != nil || !bytes.Contains(data, []byte(edit.Workload.Name)) {
			continue
		}
		pf, p := parseFile(file, data, true)
		if p != nil {
			continue
		}
		if len(findObjects(pf, edit.Workload)) > 0 {
			found = append(found, file)
		}
		pf.release()
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("annotate %s: %w", edit.Workload, ErrWorkloadNotFound)
	case 1:
	default:
		return nil, fmt.Errorf("annotate %s: %w: in %s", edit.Workload, ErrAmbiguous, strings.Join(found, ", "))
	}
	path, fd, err := readRepoFile(root, found[0])
	if err != nil {
		return nil, err
	}
	out, changes, err := f.AnnotateBytes(found[0], fd.data, edit)
	if err != nil {
		return nil, err
	}
	cs := &ChangeSet{Changes: changes}
	if bytes.Equal(out, fd.data) {
		return cs, nil
	}
	if err := writeAll(ctx, []pendingWrite{{file: found[0], path: path, old: fd.data, new: out, mode: fd.mode}}); err != nil {
		return nil, fmt.Errorf("annotate %s: %w", edit.Workload, err)
	}
	return cs, nil
}

// findObjects returns the objects of a parsed file with the given identity.
func findObjects(pf *parsedFile, w Workload) []*yaml.Node {
	var out []*yaml.Node
	for _, root := range pf.docs {
		if root == nil {
			continue
		}
		eachObject(root, func(obj *yaml.Node, _ string, _, _ bool) {
			if obj.Kind == yaml.MappingNode && objectID(obj) == w {
				out = append(out, obj)
			}
		})
	}
	return out
}

// AnnotateBytes applies an annotation edit to one file's content. A setting that is already
// written (in any spelling) is edited where it is; a new one is added with the prefix the
// workload (or else the file) already uses, imagebot.dev/ otherwise, into the existing
// annotations map with its indentation, or a new annotations map under metadata.
func (f *Finder) AnnotateBytes(file string, data []byte, edit AnnotationEdit) ([]byte, []Change, error) {
	fail := func(line int, field string, err error) ([]byte, []Change, error) {
		return nil, nil, &EditError{File: file, Line: line, Field: field, Err: err}
	}
	pf, p := parseFile(file, data, false)
	if p != nil {
		return fail(p.Line, p.Field, p.Err)
	}
	objs := findObjects(pf, edit.Workload)
	switch len(objs) {
	case 0:
		return fail(0, "", fmt.Errorf("%w: %s", ErrWorkloadNotFound, edit.Workload))
	case 1:
	default:
		return fail(objs[1].Line, "", fmt.Errorf("%w: %s", ErrAmbiguous, edit.Workload))
	}
	obj := objs[0]
	if err := f.checkTags(file, pf, obj, edit); err != nil {
		return nil, nil, err
	}
	ann := readAnnotations(file, obj)
	prefix := ann.prefixUsed
	if prefix == "" {
		prefix = filePrefix(file, pf)
	}
	pl := annotationPlanner{file: file, data: data, li: pf.index(), ann: ann, prefix: prefix, w: edit.Workload}
	if k, _, _ := mapGet(obj, "metadata"); k != nil {
		pl.metaKeyCol = k.Column
	}
	for _, op := range edit.ops() {
		if err := pl.apply(op); err != nil {
			return nil, nil, err
		}
	}
	if err := pl.finish(); err != nil {
		return nil, nil, err
	}
	if len(pl.splices) == 0 {
		return data, nil, nil
	}
	out, err := applySplices(data, pl.splices)
	if err != nil {
		return fail(obj.Line, "", err)
	}
	if err := verifyAnnotations(file, pf, out, obj, pl.expected()); err != nil {
		return nil, nil, err
	}
	return out, pl.changes, nil
}

// checkTags refuses tag edits for containers the workload does not have, and invalid
// policies.
func (f *Finder) checkTags(file string, pf *parsedFile, obj *yaml.Node, edit AnnotationEdit) error {
	if len(edit.Tags) == 0 {
		return nil
	}
	known := map[string]bool{}
	s := &scanner{f: f, file: file}
	w := objectID(obj)
	group := apiGroup(mapScalar(obj, "apiVersion"))
	switch {
	case podSpecPath(w.Kind, group) != nil:
		spec := obj
		for _, key := range podSpecPath(w.Kind, group) {
			spec, _ = mapMapping(spec, key)
		}
		for _, list := range []string{"containers", "initContainers"} {
			if _, seq, _ := mapGet(spec, list); seq != nil {
				for _, c := range seq.Content {
					known[mapScalar(c, "name")] = true
				}
			}
		}
	case w.Kind == "HelmRelease":
		for _, t := range s.helmRelease(obj, "", w, readAnnotations(file, obj), false) {
			known[t.Container] = true
		}
	}
	for c, spec := range edit.Tags {
		if !known[c] {
			return &EditError{File: file, Line: obj.Line, Field: "tag." + c, Err: fmt.Errorf("%w %q in %s", ErrUnknownContainer, c, w)}
		}
		if spec != "" {
			if err := f.validate(spec); err != nil {
				return &EditError{File: file, Line: obj.Line, Field: "tag." + c, Err: fmt.Errorf("%w %q: %v", ErrInvalidPolicy, spec, err)}
			}
		}
	}
	return nil
}

// filePrefix is the annotation prefix the file's other objects use, or imagebot.dev/.
func filePrefix(file string, pf *parsedFile) string {
	prefix := ""
	for _, root := range pf.docs {
		if root == nil {
			continue
		}
		eachObject(root, func(obj *yaml.Node, _ string, _, _ bool) {
			if prefix == "" && obj.Kind == yaml.MappingNode {
				prefix = readAnnotations(file, obj).prefixUsed
			}
		})
	}
	if prefix == "" {
		prefix = Prefixes[0]
	}
	return prefix
}
