package update

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// fieldNode is a Field with the parsed node it came from.
type fieldNode struct {
	node   *yaml.Node
	flow   bool // inside a flow collection ({…} or […])
	shared bool // anchored or reached through an alias: editing it would change other places
}

// target is a Target with what the editor needs: the nodes of its fields and the parts of
// the reference no field holds.
type target struct {
	Target
	nodes []fieldNode
	base  refParts
}

// fileScan is the result of scanning one file.
type fileScan struct {
	pf       *parsedFile
	targets  []*target
	problems []Problem
}

// scanner scans the documents of one file.
type scanner struct {
	f        *Finder
	file     string
	doc      int
	targets  []*target
	problems []Problem
	marks    bool // the file may hold marker comments
}

// scanBytes finds the targets in one file's bytes. A file that cannot be parsed yields a
// single problem and no targets.
func (f *Finder) scanBytes(file string, data []byte, fast bool) fileScan {
	pf, p := parseFile(file, data, fast)
	if p != nil {
		return fileScan{problems: []Problem{*p}}
	}
	s := &scanner{f: f, file: file, marks: bytes.Contains(data, []byte(`"$image`))}
	for i, root := range pf.docs {
		s.doc = i
		if root != nil {
			s.document(root)
		}
	}
	if len(s.targets) > 0 {
		if bytes.IndexByte(data, '*') >= 0 {
			markAliasedSubtrees(pf.docs, s.targets)
		}
		li := pf.index()
		for _, t := range s.targets {
			s.checkEditable(li, t)
		}
	}
	sort.SliceStable(s.targets, func(i, j int) bool { return s.targets[i].Line < s.targets[j].Line })
	sort.SliceStable(s.problems, func(i, j int) bool { return s.problems[i].Line < s.problems[j].Line })
	return fileScan{pf: pf, targets: s.targets, problems: s.problems}
}

// document dispatches the objects of a document to s.object.
func (s *scanner) document(root *yaml.Node) {
	eachObject(root, s.object)
}

// eachObject calls fn for each object of a document: a List's items, a top-level
// sequence's items, or the document itself.
func eachObject(root *yaml.Node, fn func(obj *yaml.Node, path string, aliased, flow bool)) {
	root, aliased := deref(root)
	switch root.Kind {
	case yaml.SequenceNode:
		for i, item := range root.Content {
			it, al := deref(item)
			fn(it, indexPath("", i), aliased || al, root.Style&yaml.FlowStyle != 0)
		}
	case yaml.MappingNode:
		_, items, al := mapGet(root, "items")
		if strings.HasSuffix(mapScalar(root, "kind"), "List") && items != nil && items.Kind == yaml.SequenceNode {
			for i, item := range items.Content {
				it, al2 := deref(item)
				fn(it, indexPath("items", i), aliased || al || al2, items.Style&yaml.FlowStyle != 0)
			}
			return
		}
		fn(root, "", aliased, root.Style&yaml.FlowStyle != 0)
	}
}

// objectID returns the Kind/Namespace/Name of an object.
func objectID(obj *yaml.Node) Workload {
	meta, _ := mapMapping(obj, "metadata")
	return Workload{Kind: mapScalar(obj, "kind"), Namespace: mapScalar(meta, "namespace"), Name: mapScalar(meta, "name")}
}

// object scans one object (a mapping that may be a Kubernetes object, or any mapping of a
// values, kustomization or compose file).
func (s *scanner) object(obj *yaml.Node, path string, aliased, flow bool) {
	if obj.Kind != yaml.MappingNode {
		s.markers(obj, path, Workload{}, nil, aliased, flow)
		return
	}
	w := objectID(obj)
	kind := w.Kind
	group := apiGroup(mapScalar(obj, "apiVersion"))

	var own []*target
	var ann *annotations
	switch {
	case podSpecPath(kind, group) != nil:
		ann = readAnnotations(s.file, obj)
		own = s.workload(obj, path, w, ann, podSpecPath(kind, group), aliased)
	case kind == "HelmRelease" && helmGroups[group]:
		ann = readAnnotations(s.file, obj)
		own = s.helmRelease(obj, path, w, ann, aliased)
	}
	if ann != nil {
		s.problems = append(s.problems, ann.conflicts...)
	}
	marked := s.markers(obj, path, w, ann, aliased, flow)
	// A marker wins for the scalars it marks: drop the object's own targets that share a
	// field with a marker target, and give the marker target their container name.
	if len(marked) > 0 && len(own) > 0 {
		byNode := map[*yaml.Node]*target{}
		for _, t := range own {
			for _, fn := range t.nodes {
				byNode[fn.node] = t
			}
		}
		dropped := map[*target]bool{}
		for _, m := range marked {
			for _, fn := range m.nodes {
				if t := byNode[fn.node]; t != nil {
					dropped[t] = true
					m.Container = t.Container
				}
			}
		}
		kept := own[:0]
		for _, t := range own {
			if !dropped[t] {
				kept = append(kept, t)
			}
		}
		own = kept
	}
	s.targets = append(s.targets, own...)
	s.targets = append(s.targets, marked...)
}

// newTarget builds a target from its fields, filling in the current image and checking it.
func (s *scanner) newTarget(w Workload, container string, src Source, fields []Field, nodes []fieldNode, base refParts) (*target, error) {
	t := &target{Target: Target{File: s.file, Line: fields[0].Line, Doc: s.doc, Workload: w, Container: container, Source: src, Fields: fields}, nodes: nodes, base: base}
	t.Image = composeRef(fields, base).String()
	if err := validRef(t.Image); err != nil {
		return t, err
	}
	return t, nil
}

// setPolicy records a policy on a target, validating it.
func (s *scanner) setPolicy(t *target, spec, source string, line int, field string) {
	t.Policy, t.PolicySource = spec, source
	if spec == "" {
		return
	}
	if err := s.f.validate(spec); err != nil {
		t.PolicyErr = fmt.Errorf("%w %q: %v", ErrInvalidPolicy, spec, err)
		if line == 0 {
			line = t.Line
		}
		s.problems = append(s.problems, Problem{File: s.file, Line: line, Field: field, Err: t.PolicyErr})
	}
}

// applyAnnotations copies a workload's automation state onto a target.
func applyAnnotations(t *target, a *annotations) {
	if a == nil {
		return
	}
	t.Automated = a.isAutomated()
	t.Locked = a.isLocked()
	t.Ignored = a.isIgnored()
	if a.lockedMsg != nil {
		t.LockedMsg = a.lockedMsg.value
	}
	if a.lockedUser != nil {
		t.LockedUser = a.lockedUser.value
	}
}

// field makes a Field and its fieldNode for scalar n at path.
func field(n *yaml.Node, part Part, path string, parent *yaml.Node, shared bool) (Field, fieldNode) {
	f := Field{Part: part, Path: path, Line: n.Line, Column: n.Column, Value: n.Value}
	if part == PartTag && strings.Contains(n.Value, "@") {
		f.TagDigest = true
	}
	return f, fieldNode{node: n, flow: parent != nil && parent.Style&yaml.FlowStyle != 0, shared: shared || n.Anchor != ""}
}

// apiGroup returns the group of an apiVersion ("" for the core group).
func apiGroup(apiVersion string) string {
	if i := strings.IndexByte(apiVersion, '/'); i >= 0 {
		return apiVersion[:i]
	}
	return ""
}

// checkEditable sets t.EditErr when a field that an update of the tag or digest rewrites
// is one the editor cannot edit (the same check Apply makes), and reports it as a Problem
// when the target is automated: such a target is kept out of automation instead of
// failing every update of the repository. A field holding only the registry or repository
// does not count (a new tag leaves it alone; Apply refuses to change it).
func (s *scanner) checkEditable(li *lineIndex, t *target) {
	for i, fl := range t.Fields {
		if fl.Part&(PartTag|PartDigest) == 0 {
			continue
		}
		_, err := editable(li, t.nodes[i])
		if err == nil {
			continue
		}
		t.EditErr = fmt.Errorf("%s: %w", fl.Path, err)
		if t.Automated && !t.Ignored {
			who := t.Workload.String()
			if t.Container != "" {
				who = strings.TrimSpace(who + " container " + t.Container)
			}
			if who != "" {
				who += ": "
			}
			s.problems = append(s.problems, Problem{File: s.file, Line: fl.Line, Column: fl.Column, Field: fl.Path,
				Err: fmt.Errorf("%simage %s is not automated: %w", who, t.Image, err)})
		}
		return
	}
}

// markAliasedSubtrees marks as shared the fields whose node lies inside a collection that
// an alias refers to (a container mapping anchored in one workload and aliased in
// another): editing it would change the other places too. A field reached through the
// alias is already marked; this catches the anchored original.
func markAliasedSubtrees(docs []*yaml.Node, targets []*target) {
	referenced := map[*yaml.Node]bool{}
	var findAliases func(n *yaml.Node, depth int)
	findAliases = func(n *yaml.Node, depth int) {
		if n == nil || depth > 10000 {
			return
		}
		if n.Kind == yaml.AliasNode {
			if n.Alias != nil {
				referenced[n.Alias] = true
			}
			return
		}
		for _, c := range n.Content {
			findAliases(c, depth+1)
		}
	}
	for _, d := range docs {
		findAliases(d, 0)
	}
	if len(referenced) == 0 {
		return
	}
	inside := map[*yaml.Node]bool{}
	var mark func(n *yaml.Node, under bool, depth int)
	mark = func(n *yaml.Node, under bool, depth int) {
		if n == nil || n.Kind == yaml.AliasNode || depth > 10000 {
			return
		}
		under = under || referenced[n]
		if under {
			inside[n] = true
		}
		for _, c := range n.Content {
			mark(c, under, depth+1)
		}
	}
	for _, d := range docs {
		mark(d, false, 0)
	}
	for _, t := range targets {
		for i := range t.nodes {
			if inside[t.nodes[i].node] {
				t.nodes[i].shared = true
			}
		}
	}
}
