package update

import (
	"fmt"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Decision asks for one target to run a new image.
type Decision struct {
	Target Target         // as returned by Find (its ID and Image are checked against the file)
	Image  name.Reference // the new reference (tag, digest, or tag@digest)
}

// splice replaces data[start:end] with text.
type splice struct {
	start, end int
	text       string
}

// EditBytes applies the decisions for one file to its content and returns the new content
// and the changes made. Only the bytes of the edited values change; the result is
// re-parsed and checked before it is returned. A decision whose target already holds the
// new image changes nothing. Any error leaves nothing changed: the caller keeps data.
func (f *Finder) EditBytes(file string, data []byte, decisions []Decision) ([]byte, []Change, error) {
	scan := f.scanBytes(file, data, false)
	if scan.pf == nil {
		p := scan.problems[0]
		return nil, nil, &EditError{File: file, Line: p.Line, Field: p.Field, Err: p.Err}
	}
	byID := make(map[string]*target, len(scan.targets))
	for _, t := range scan.targets {
		byID[t.ID()] = t
	}
	var splices []splice
	var changes []Change
	want := map[*yaml.Node]string{}
	for _, d := range decisions {
		if d.Target.File != file {
			return nil, nil, &EditError{File: file, Err: fmt.Errorf("%w: decision for %s given for %s", ErrTargetNotFound, d.Target.File, file)}
		}
		if d.Image == nil {
			return nil, nil, &EditError{File: file, Line: d.Target.Line, Err: fmt.Errorf("%w: no new image", ErrInvalidImage)}
		}
		t := byID[d.Target.ID()]
		if t == nil {
			return nil, nil, &EditError{File: file, Line: d.Target.Line, Err: fmt.Errorf("%w: %s", ErrTargetNotFound, d.Target.ID())}
		}
		if t.Image != d.Target.Image {
			return nil, nil, &EditError{File: file, Line: t.Line, Field: t.Fields[0].Path,
				Err: fmt.Errorf("%w: found %s, now %s", ErrStale, d.Target.Image, t.Image)}
		}
		ss, ch, err := planTarget(scan.pf.index(), t, d.Image, want)
		if err != nil {
			return nil, nil, &EditError{File: file, Line: t.Line, Field: t.Fields[0].Path, Err: err}
		}
		splices = append(splices, ss...)
		if ch != nil {
			changes = append(changes, *ch)
		}
	}
	if len(splices) == 0 {
		return data, nil, nil
	}
	out, err := applySplices(data, splices)
	if err != nil {
		return nil, nil, &EditError{File: file, Err: err}
	}
	if err := verifyEdit(file, scan.pf, out, want); err != nil {
		return nil, nil, err
	}
	return out, changes, nil
}

// planTarget computes the splices that make target t hold ref, and records the expected
// new value of every edited node in want.
func planTarget(li *lineIndex, t *target, ref name.Reference, want map[*yaml.Node]string) ([]splice, *Change, error) {
	if err := validRef(ref.String()); err != nil {
		return nil, nil, err
	}
	cur := composeRef(t.Fields, t.base)
	vals, err := renderFields(t.Fields, cur, splitRef(ref.String()))
	if err != nil {
		return nil, nil, err
	}
	ch := &Change{File: t.File, Line: t.Line, Workload: t.Workload, Container: t.Container, Source: t.Source, Policy: t.Policy, Old: t.Image}
	var out []splice
	newFields := make([]Field, len(t.Fields))
	for i, fl := range t.Fields {
		newFields[i] = fl
		newFields[i].Value = vals[i]
		if vals[i] == fl.Value {
			continue
		}
		fn := t.nodes[i]
		// The same check Find uses to keep such a target out of automation (Target.EditErr):
		// refused here too, for a decision made without looking.
		sp, err := editable(li, fn)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", fl.Path, err)
		}
		if prev, ok := want[fn.node]; ok && prev != vals[i] {
			return nil, nil, fmt.Errorf("%w: %s is edited twice (%q and %q)", ErrCannotExpress, fl.Path, prev, vals[i])
		} else if ok {
			continue
		}
		text, err := quoteFor(vals[i], sp.style, fn.flow)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", fl.Path, err)
		}
		want[fn.node] = vals[i]
		out = append(out, splice{start: sp.start, end: sp.end, text: text})
		ch.Fields = append(ch.Fields, FieldChange{Path: fl.Path, Line: fl.Line, Old: fl.Value, New: vals[i]})
	}
	if len(out) == 0 {
		return nil, nil, nil
	}
	ch.New = composeRef(newFields, t.base).String()
	if err := validRef(ch.New); err != nil {
		return nil, nil, err
	}
	return out, ch, nil
}

// applySplices replaces the byte ranges (which must not overlap).
func applySplices(data []byte, splices []splice) ([]byte, error) {
	sort.Slice(splices, func(i, j int) bool {
		if splices[i].start != splices[j].start {
			return splices[i].start < splices[j].start
		}
		return splices[i].end < splices[j].end // an insert before a removal at the same place
	})
	size := len(data)
	for i, s := range splices {
		if i > 0 && s.start < splices[i-1].end {
			return nil, fmt.Errorf("%w: overlapping edits at byte %d", ErrCannotExpress, s.start)
		}
		size += len(s.text) - (s.end - s.start)
	}
	out := make([]byte, 0, size)
	last := 0
	for _, s := range splices {
		out = append(out, data[last:s.start]...)
		out = append(out, s.text...)
		last = s.end
	}
	return append(out, data[last:]...), nil
}

// verifyEdit re-parses the edited bytes and checks that every document is the same as
// before (kinds, values, tags, styles, anchors, comments, lines; columns on unedited lines)
// except the edited scalars, which must now read their new values as strings.
func verifyEdit(file string, before *parsedFile, after []byte, want map[*yaml.Node]string) error {
	pf, p := parseFile(file, after, false)
	if p != nil {
		return &EditError{File: file, Line: p.Line, Err: fmt.Errorf("%w: the edited file does not parse: %v", ErrVerify, p.Err)}
	}
	if len(pf.docs) != len(before.docs) {
		return &EditError{File: file, Err: fmt.Errorf("%w: %d documents before, %d after", ErrVerify, len(before.docs), len(pf.docs))}
	}
	edited := map[int]bool{}
	for n := range want {
		edited[n.Line] = true
	}
	c := treeCompare{want: want, editedLines: edited, checkLines: true}
	for i := range pf.docs {
		if err := c.same(before.docs[i], pf.docs[i], ""); err != nil {
			return &EditError{File: file, Line: c.line, Field: c.path, Err: fmt.Errorf("%w: %v", ErrVerify, err)}
		}
	}
	if c.seen != len(want) {
		return &EditError{File: file, Err: fmt.Errorf("%w: %d of %d edited values found", ErrVerify, c.seen, len(want))}
	}
	return nil
}

// treeCompare compares two parsed documents.
type treeCompare struct {
	want        map[*yaml.Node]string // nodes of the old tree that must read a new value
	editedLines map[int]bool          // lines whose columns may shift
	checkLines  bool                  // compare lines and columns (off for inserts)
	// skipComments does not compare comments (a removed line may move a comment to
	// another node).
	skipComments bool
	skipPairs    map[*yaml.Node]string // old mapping -> key whose pair is not compared (in either tree)
	seen         int
	line         int
	path         string
}

func (c *treeCompare) same(a, b *yaml.Node, path string) error {
	fail := func(format string, args ...any) error {
		c.line, c.path = a.Line, path
		return fmt.Errorf(format, args...)
	}
	if a == nil || b == nil {
		if a != b {
			c.path = path
			return fmt.Errorf("document added or removed")
		}
		return nil
	}
	if key, ok := c.skipPairs[a]; ok && a.Kind == yaml.MappingNode && b.Kind == yaml.MappingNode {
		a2, b2 := *a, *b
		a2.Content, b2.Content = withoutPair(a.Content, key), withoutPair(b.Content, key)
		a, b = &a2, &b2
	}
	if a.Kind != b.Kind || a.Anchor != b.Anchor || len(a.Content) != len(b.Content) {
		return fail("node changed shape")
	}
	if !c.skipComments && (a.HeadComment != b.HeadComment || a.LineComment != b.LineComment || a.FootComment != b.FootComment) {
		return fail("comment changed")
	}
	if c.checkLines && (a.Line != b.Line || !c.editedLines[a.Line] && a.Column != b.Column) {
		return fail("moved from %d:%d to %d:%d", a.Line, a.Column, b.Line, b.Column)
	}
	if v, ok := c.want[a]; ok {
		c.seen++
		if b.Value != v || b.Tag != "!!str" {
			return fail("reads %q (%s), want %q", b.Value, b.Tag, v)
		}
	} else if a.Value != b.Value || a.Tag != b.Tag || a.Style != b.Style {
		return fail("value changed from %q to %q", a.Value, b.Value)
	}
	if a.Kind == yaml.AliasNode && (a.Alias == nil) != (b.Alias == nil) {
		return fail("alias changed")
	}
	for i := range a.Content {
		p := path
		if a.Kind == yaml.MappingNode && i%2 == 1 {
			p = joinPath(path, a.Content[i-1].Value)
		} else if a.Kind == yaml.SequenceNode {
			p = indexPath(path, i)
		}
		if err := c.same(a.Content[i], b.Content[i], p); err != nil {
			return err
		}
	}
	return nil
}

// withoutPair returns mapping content without the pair of key.
func withoutPair(content []*yaml.Node, key string) []*yaml.Node {
	out := make([]*yaml.Node, 0, len(content))
	for i := 0; i+1 < len(content); i += 2 {
		if content[i].Kind == yaml.ScalarNode && content[i].Value == key {
			continue
		}
		out = append(out, content[i], content[i+1])
	}
	return out
}
