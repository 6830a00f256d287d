package update

import (
	"fmt"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// annotationPlanner turns annotation ops into byte splices on one object.
type annotationPlanner struct {
	file    string
	data    []byte
	li      *lineIndex
	ann     *annotations
	prefix  string
	w       Workload
	splices []splice
	changes []Change
	inserts [][2]string         // new key, value pairs
	removed map[*yaml.Node]bool // key nodes of removed pairs
	setTo   map[string]string   // key -> new value of edited pairs
	// metaKeyCol is the column of the "metadata" key (to infer the indentation step).
	metaKeyCol int
}

func (pl *annotationPlanner) err(line int, field string, err error) error {
	return &EditError{File: pl.file, Line: line, Field: field, Err: err}
}

func (pl *annotationPlanner) change(line int, key, old, new string) {
	pl.changes = append(pl.changes, Change{File: pl.file, Line: line, Workload: pl.w, Annotation: key, Old: old, New: new})
}

// pairs returns the annotation pairs (key, value nodes) whose key is one of keys.
func (pl *annotationPlanner) pairs(keys []string) [][2]*yaml.Node {
	var out [][2]*yaml.Node
	if pl.ann.node == nil {
		return nil
	}
	for i := 0; i+1 < len(pl.ann.node.Content); i += 2 {
		k := pl.ann.node.Content[i]
		for _, key := range keys {
			if k.Value == key {
				out = append(out, [2]*yaml.Node{k, pl.ann.node.Content[i+1]})
			}
		}
	}
	return out
}

func (pl *annotationPlanner) apply(op annotationOp) error {
	existing := pl.pairs(op.spellings())
	if op.remove {
		for _, kv := range existing {
			if err := pl.removePair(kv[0], kv[1]); err != nil {
				return err
			}
			pl.change(kv[0].Line, kv[0].Value, kv[1].Value, "")
		}
		return nil
	}
	if len(existing) > 0 {
		for _, kv := range existing {
			k, v := kv[0], kv[1]
			if v.Value == op.value && v.Tag == "!!str" {
				continue
			}
			sp, err := scalarSpan(pl.li, v, pl.ann.node.Style&yaml.FlowStyle != 0)
			if err != nil {
				return pl.err(v.Line, pl.ann.path+"["+k.Value+"]", err)
			}
			text, err := quoteFor(op.value, sp.style, pl.ann.node.Style&yaml.FlowStyle != 0)
			if err != nil {
				return pl.err(v.Line, pl.ann.path+"["+k.Value+"]", err)
			}
			pl.splices = append(pl.splices, splice{start: sp.start, end: sp.end, text: text})
			if pl.setTo == nil {
				pl.setTo = map[string]string{}
			}
			pl.setTo[k.Value] = op.value
			pl.change(k.Line, k.Value, v.Value, op.value)
		}
		return nil
	}
	key := pl.prefix + op.suffix
	pl.inserts = append(pl.inserts, [2]string{key, op.value})
	line := pl.metaLine()
	if pl.ann.node != nil {
		line = pl.ann.node.Line
	}
	pl.change(line, key, "", op.value)
	return nil
}

// removePair deletes the line(s) of one block-mapping pair written on one line.
func (pl *annotationPlanner) removePair(k, v *yaml.Node) error {
	field := pl.ann.path + "[" + k.Value + "]"
	if pl.ann.node.Style&yaml.FlowStyle != 0 {
		return pl.err(k.Line, field, fmt.Errorf("%w: annotations written as a flow mapping", ErrUnsupported))
	}
	if v.Kind != yaml.ScalarNode || v.Line != k.Line {
		return pl.err(k.Line, field, fmt.Errorf("%w: value not on the key's line", ErrUnsupported))
	}
	sp, err := scalarSpan(pl.li, v, false)
	if err != nil {
		return pl.err(k.Line, field, err)
	}
	ls := pl.li.start[k.Line-1]
	koff, err := pl.li.offset(k.Line, k.Column)
	if err != nil {
		return pl.err(k.Line, field, err)
	}
	if !blank(pl.data[ls:koff]) {
		return pl.err(k.Line, field, fmt.Errorf("%w: key does not start its line", ErrUnsupported))
	}
	le := lineEnd(pl.data, sp.end)
	rest := pl.data[sp.end:le]
	for i, c := range rest {
		if c == '#' {
			break
		}
		if c != ' ' && c != '\t' {
			return pl.err(k.Line, field, fmt.Errorf("%w: more on the line after the value (at byte %d)", ErrUnsupported, i))
		}
	}
	start, end := ls, le
	if le < len(pl.data) {
		end = le + breakWidth(pl.data, le)
	} else if ls > 0 {
		// Last line without a final newline: take the newline before it instead.
		start = ls - prevBreakWidth(pl.data, ls)
	}
	pl.splices = append(pl.splices, splice{start: start, end: end})
	if pl.removed == nil {
		pl.removed = map[*yaml.Node]bool{}
	}
	pl.removed[k] = true
	return nil
}

// finish inserts the new pairs, and removes an annotations map that became empty.
func (pl *annotationPlanner) finish() error {
	if len(pl.inserts) == 0 {
		if pl.ann.node != nil && len(pl.removed) > 0 && len(pl.removed) == len(pl.ann.node.Content)/2 {
			pl.removeEmptyAnnotations()
		}
		return nil
	}
	meta := pl.ann.metadata
	if meta == nil || meta.Style&yaml.FlowStyle != 0 || len(meta.Content) == 0 {
		return pl.err(pl.metaLine(), "metadata", fmt.Errorf("%w: no block metadata mapping to add annotations to", ErrUnsupported))
	}
	if pl.ann.node == nil {
		if k, v, _ := mapGet(meta, "annotations"); k != nil {
			return pl.err(k.Line, "metadata.annotations", fmt.Errorf("%w: annotations is a %s, not a mapping", ErrUnsupported, kindName(v)))
		}
		return pl.createAnnotations(meta)
	}
	node := pl.ann.node
	if node.Style&yaml.FlowStyle != 0 || len(node.Content) == 0 {
		return pl.err(node.Line, "metadata.annotations", fmt.Errorf("%w: annotations written as a flow mapping", ErrUnsupported))
	}
	indent := node.Content[0].Column - 1
	pos, eol := pl.insertPoint(node, false)
	var text []byte
	for _, kv := range pl.inserts {
		text = append(text, pl.pairLine(indent, kv[0], kv[1], eol)...)
	}
	pl.addInsert(pos, text, eol)
	return nil
}

// createAnnotations adds "annotations:" with the new pairs under metadata.
func (pl *annotationPlanner) createAnnotations(meta *yaml.Node) error {
	indent := meta.Content[0].Column - 1
	step := 2
	if pl.metaKeyCol > 0 && indent-(pl.metaKeyCol-1) > 0 {
		step = indent - (pl.metaKeyCol - 1)
	}
	pos, eol := pl.insertPoint(meta, true)
	text := append(spaces(indent), "annotations:"...)
	text = append(text, eol...)
	for _, kv := range pl.inserts {
		text = append(text, pl.pairLine(indent+step, kv[0], kv[1], eol)...)
	}
	pl.addInsert(pos, text, eol)
	return nil
}

// insertPoint is where new pairs go in a block mapping: after its last pair (or, with
// leading, after the run of one-line scalar pairs it starts with: name, namespace) when
// that pair is one line, else before its first pair. eol is the line ending there.
func (pl *annotationPlanner) insertPoint(m *yaml.Node, leading bool) (int, string) {
	after := -1
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		oneLine := false
		if v.Kind == yaml.ScalarNode && v.Line == k.Line {
			_, err := scalarSpan(pl.li, v, false)
			oneLine = err == nil
		}
		switch {
		case oneLine:
			after = i + 1
		case leading:
			i = len(m.Content) // stop at the first multi-line pair
		default:
			after = -1
		}
	}
	if after > 0 {
		sp, _ := scalarSpan(pl.li, m.Content[after], false)
		le := lineEnd(pl.data, sp.end)
		return le + breakWidth(pl.data, le), eolAt(pl.data, le)
	}
	ls := pl.li.start[m.Content[0].Line-1]
	return ls, eolAt(pl.data, lineEnd(pl.data, ls))
}

func (pl *annotationPlanner) addInsert(pos int, text []byte, eol string) {
	if pos == len(pl.data) && len(pl.data) > 0 && !isBreakAt(pl.data, len(pl.data)-1) {
		// The file has no final newline: start a line, and keep it without one.
		text = append([]byte(eol), text[:len(text)-len(eol)]...)
	}
	pl.splices = append(pl.splices, splice{start: pos, end: pos, text: string(text)})
}

func (pl *annotationPlanner) pairLine(indent int, key, value, eol string) []byte {
	k, _ := quoteFor(key, 0, false)
	style := yaml.Style(0)
	if value == "true" || value == "false" {
		style = yaml.DoubleQuotedStyle
	}
	v, _ := quoteFor(value, style, false)
	line := append(spaces(indent), k+": "+v+eol...)
	return line
}

// removeEmptyAnnotations deletes the "annotations:" line when every pair was removed and
// the line holds nothing else.
func (pl *annotationPlanner) removeEmptyAnnotations() {
	meta := pl.ann.metadata
	for i := 0; i+1 < len(meta.Content); i += 2 {
		k := meta.Content[i]
		if k.Value != "annotations" || meta.Content[i+1] != pl.ann.node || pl.ann.node.Line == k.Line {
			continue
		}
		ls := pl.li.start[k.Line-1]
		koff, err := pl.li.offset(k.Line, k.Column)
		if err != nil || !blank(pl.data[ls:koff]) {
			return
		}
		le := lineEnd(pl.data, koff)
		line := pl.data[koff:le]
		rest := line[len("annotations"):]
		if len(rest) == 0 || rest[0] != ':' || !blankOrComment(rest[1:]) || le >= len(pl.data) {
			return
		}
		pl.splices = append(pl.splices, splice{start: ls, end: le + breakWidth(pl.data, le)})
	}
}

func (pl *annotationPlanner) metaLine() int {
	if pl.ann.metadata != nil {
		return pl.ann.metadata.Line
	}
	return 0
}

// expected returns the annotations the object must have after the edit.
func (pl *annotationPlanner) expected() map[string]string {
	out := map[string]string{}
	if pl.ann.node != nil {
		for i := 0; i+1 < len(pl.ann.node.Content); i += 2 {
			k, v := pl.ann.node.Content[i], pl.ann.node.Content[i+1]
			if pl.removed[k] {
				continue
			}
			out[k.Value] = v.Value
			if nv, ok := pl.setTo[k.Value]; ok {
				out[k.Value] = nv
			}
		}
	}
	for _, kv := range pl.inserts {
		out[kv[0]] = kv[1]
	}
	return out
}

// verifyAnnotations re-parses the edited bytes: the object must carry exactly the expected
// annotations, and everything else in the file must be as it was.
func verifyAnnotations(file string, before *parsedFile, after []byte, obj *yaml.Node, want map[string]string) error {
	pf, p := parseFile(file, after, false)
	if p != nil {
		return &EditError{File: file, Line: p.Line, Err: fmt.Errorf("%w: the edited file does not parse: %v", ErrVerify, p.Err)}
	}
	if len(pf.docs) != len(before.docs) {
		return &EditError{File: file, Err: fmt.Errorf("%w: %d documents before, %d after", ErrVerify, len(before.docs), len(pf.docs))}
	}
	meta, _ := mapMapping(obj, "metadata")
	c := treeCompare{skipPairs: map[*yaml.Node]string{meta: "annotations"}, skipComments: true}
	for i := range pf.docs {
		if err := c.same(before.docs[i], pf.docs[i], ""); err != nil {
			return &EditError{File: file, Line: c.line, Field: c.path, Err: fmt.Errorf("%w: %v", ErrVerify, err)}
		}
	}
	objs := findObjects(pf, objectID(obj))
	if len(objs) != 1 {
		return &EditError{File: file, Err: fmt.Errorf("%w: %s found %d times after the edit", ErrVerify, objectID(obj), len(objs))}
	}
	got := map[string]string{}
	if m, _ := mapMapping(objs[0], "metadata"); m != nil {
		if a, _ := mapMapping(m, "annotations"); a != nil {
			for i := 0; i+1 < len(a.Content); i += 2 {
				if a.Content[i+1].Tag != "!!str" {
					return &EditError{File: file, Line: a.Content[i].Line, Err: fmt.Errorf("%w: annotation %s is not a string", ErrVerify, a.Content[i].Value)}
				}
				got[a.Content[i].Value] = a.Content[i+1].Value
			}
		}
	}
	if len(got) != len(want) {
		return &EditError{File: file, Line: obj.Line, Err: fmt.Errorf("%w: %d annotations after the edit, want %d", ErrVerify, len(got), len(want))}
	}
	for k, v := range want {
		if got[k] != v {
			return &EditError{File: file, Line: obj.Line, Field: "metadata.annotations[" + k + "]", Err: fmt.Errorf("%w: reads %q, want %q", ErrVerify, got[k], v)}
		}
	}
	return nil
}

func kindName(n *yaml.Node) string {
	if n == nil {
		return "null"
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "scalar"
	case yaml.SequenceNode:
		return "sequence"
	}
	return "node"
}
