package update

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// MarkerPolicy is what a Flux v2 "$imagepolicy" marker name resolves to (from the
// repository's config).
type MarkerPolicy struct {
	Policy string // policy spec, e.g. "semver:~1.2"
	// Image is the repository the policy follows. It is needed when the marked fields hold
	// no repository (a ":tag" marker alone); otherwise the repository written in the file
	// is used.
	Image string
}

// Marker keys in a line comment.
const (
	MarkerKey       = "$imagepolicy" // Flux v2: # {"$imagepolicy": "<namespace>:<name>[:tag|:name|:digest]"}
	InlineMarkerKey = "$imagebot"    // imagebot: # {"$imagebot": "<policy>"[, "part": "tag", "image": "<repository>"]}
)

// marker is a parsed marker comment.
type marker struct {
	src   Source
	ident string // markers with the same ident in one mapping form one target
	name  string // $imagepolicy name, "namespace:name"
	spec  string // $imagebot policy
	image string // repository for fields that hold none
	part  Part
	text  string
}

var partNames = map[string]Part{
	"": PartRef, "ref": PartRef, "name": PartName, "tag": PartTag, "digest": PartDigest,
	"registry": PartRegistry, "repository": PartRepository,
}

// parseMarker reads a line comment. It returns nil, nil when the comment is no marker.
func parseMarker(comment string) (*marker, error) {
	if !strings.Contains(comment, `"`+MarkerKey+`"`) && !strings.Contains(comment, `"`+InlineMarkerKey+`"`) {
		return nil, nil
	}
	text := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(comment), "#"))
	var obj map[string]string
	if err := json.Unmarshal([]byte(text), &obj); err != nil {
		return nil, fmt.Errorf("%w: %s: not a JSON object of strings: %v", ErrInvalidMarker, text, err)
	}
	if v, ok := obj[MarkerKey]; ok {
		m := &marker{src: SourceMarker, text: text}
		parts := strings.Split(v, ":")
		switch {
		case len(parts) == 3 && (parts[2] == "tag" || parts[2] == "name" || parts[2] == "digest"):
			m.part = partNames[parts[2]]
			parts = parts[:2]
		case len(parts) > 2:
			return nil, fmt.Errorf("%w: %s: want \"namespace:name\" with an optional :tag, :name or :digest", ErrInvalidMarker, text)
		default:
			m.part = PartRef
		}
		if parts[len(parts)-1] == "" || parts[0] == "" {
			return nil, fmt.Errorf("%w: %s: empty policy name", ErrInvalidMarker, text)
		}
		m.name = strings.Join(parts, ":")
		m.ident = m.name
		return m, nil
	}
	m := &marker{src: SourceInlineMarker, text: text, spec: obj[InlineMarkerKey], image: obj["image"]}
	part, ok := partNames[obj["part"]]
	if _, given := obj["part"]; !given {
		part = 0 // decided by the key (see inlinePart)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s: part %q is not one of ref, name, registry, repository, tag, digest", ErrInvalidMarker, text, obj["part"])
	}
	for k := range obj {
		if k != InlineMarkerKey && k != "part" && k != "image" {
			return nil, fmt.Errorf("%w: %s: unknown key %q", ErrInvalidMarker, text, k)
		}
	}
	m.part = part
	m.ident = m.spec + "\x00" + m.image
	return m, nil
}

// markedField is a scalar carrying a marker.
type markedField struct {
	m      *marker
	node   *yaml.Node
	parent *yaml.Node
	path   string
	shared bool
	flow   bool
}

// markers finds the marked scalars below n and groups them into targets: marked scalars
// of one mapping with the same policy make one target (repository + tag, say).
func (s *scanner) markers(n *yaml.Node, path string, w Workload, ann *annotations, aliased, flow bool) []*target {
	if !s.marks {
		return nil
	}
	var found []markedField
	var walk func(n, parent *yaml.Node, path string, shared, flow bool, comment string, line int)
	walk = func(n, parent *yaml.Node, path string, shared, flow bool, comment string, line int) {
		if comment == "" {
			comment = n.LineComment
		}
		if m, err := parseMarker(comment); err != nil {
			s.problems = append(s.problems, Problem{File: s.file, Line: line, Field: path, Err: err})
		} else if m != nil {
			switch {
			case n.Kind == yaml.AliasNode:
				s.problems = append(s.problems, Problem{File: s.file, Line: line, Field: path, Err: fmt.Errorf("%w: marker on an alias", ErrUnsupported)})
			case n.Kind != yaml.ScalarNode:
				s.problems = append(s.problems, Problem{File: s.file, Line: line, Field: path, Err: fmt.Errorf("%w: marker on a collection, not a scalar", ErrInvalidMarker)})
			default:
				if m.part == 0 {
					m.part = inlinePart(path)
				}
				found = append(found, markedField{m: m, node: n, parent: parent, path: path, shared: shared || n.Anchor != "", flow: flow})
			}
		}
		fl := flow || n.Style&yaml.FlowStyle != 0
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				c := ""
				if v.LineComment == "" && k.Line == v.Line {
					c = k.LineComment
				} else if v.Kind != yaml.ScalarNode && k.LineComment != "" {
					c = k.LineComment
				}
				walk(v, n, joinPath(path, k.Value), shared, fl, c, k.Line)
			}
		case yaml.SequenceNode:
			for i, e := range n.Content {
				walk(e, n, indexPath(path, i), shared, fl, "", e.Line)
			}
		}
	}
	walk(n, nil, path, aliased, flow, "", n.Line)
	return s.markerTargets(found, w, ann)
}

func (s *scanner) markerTargets(found []markedField, w Workload, ann *annotations) []*target {
	type group struct {
		fields []markedField
	}
	var order []string
	groups := map[string]*group{}
	for _, mf := range found {
		key := fmt.Sprintf("%p\x00%s", mf.parent, mf.m.ident)
		if mf.parent == nil || mf.parent.Kind != yaml.MappingNode {
			key = fmt.Sprintf("%p", mf.node)
		}
		g := groups[key]
		if g == nil {
			g = &group{}
			groups[key] = g
			order = append(order, key)
		}
		g.fields = append(g.fields, mf)
	}
	var out []*target
	for _, key := range order {
		g := groups[key]
		sort.SliceStable(g.fields, func(i, j int) bool { return lowBit(g.fields[i].m.part) < lowBit(g.fields[j].m.part) })
		first := g.fields[0]
		m := first.m
		var held Part
		var fields []Field
		var nodes []fieldNode
		bad := false
		for _, mf := range g.fields {
			if held&mf.m.part != 0 {
				s.problems = append(s.problems, Problem{File: s.file, Line: mf.node.Line, Field: mf.path,
					Err: fmt.Errorf("%w: %s: two markers in one mapping hold the %s", ErrInvalidMarker, mf.m.text, mf.m.part)})
				bad = true
			}
			held |= mf.m.part
			f, fn := field(mf.node, mf.m.part, mf.path, mf.parent, mf.shared)
			fn.flow = mf.flow
			fields = append(fields, f)
			nodes = append(nodes, fn)
		}
		if bad {
			continue
		}
		spec, image := m.spec, m.image
		if m.src == SourceMarker {
			mp, ok := s.f.Markers[m.name]
			if !ok {
				s.problems = append(s.problems, Problem{File: s.file, Line: first.node.Line, Field: first.path,
					Err: fmt.Errorf("%w %q", ErrUnknownMarkerPolicy, m.name)})
				continue
			}
			spec, image = mp.Policy, mp.Image
		}
		var base refParts
		if held&PartRepository == 0 {
			repo := image
			if repo == "" {
				repo = siblingRepository(first.parent)
			}
			if repo == "" {
				s.problems = append(s.problems, Problem{File: s.file, Line: first.node.Line, Field: first.path,
					Err: fmt.Errorf("%w: %s: the marked fields hold no repository and none is known (set \"image\")", ErrInvalidMarker, m.text)})
				continue
			}
			b := splitRef(repo)
			base = refParts{Registry: b.Registry, Repository: b.Repository}
		}
		t, err := s.newTarget(w, "", m.src, fields, nodes, base)
		if err != nil {
			s.problems = append(s.problems, Problem{File: s.file, Line: first.node.Line, Field: first.path, Err: err})
			continue
		}
		applyAnnotations(t, ann)
		t.Automated = true
		s.setPolicy(t, spec, m.text, first.node.Line, first.path)
		out = append(out, t)
	}
	return out
}

// siblingRepository finds the repository beside a marked tag: kustomize's newName (or
// name), or a Helm image map's repository (with its registry).
func siblingRepository(parent *yaml.Node) string {
	if parent == nil || parent.Kind != yaml.MappingNode {
		return ""
	}
	if v := mapScalar(parent, "newName"); v != "" {
		return v
	}
	if _, nt, _ := mapGet(parent, "newTag"); nt != nil {
		return mapScalar(parent, "name")
	}
	if r := mapScalar(parent, "repository"); r != "" {
		if reg := mapScalar(parent, "registry"); reg != "" {
			return reg + "/" + r
		}
		return r
	}
	return ""
}

func lowBit(p Part) Part { return p & -p }

// inlinePart is the part an inline marker without "part" holds, by the key it sits on:
// tag and newTag hold a tag, newName and repository a name, digest a digest; anything else
// (image:, a list item) a whole reference.
func inlinePart(path string) Part {
	key := path
	if i := strings.LastIndexAny(path, ".]"); i >= 0 {
		key = path[i+1:]
	}
	switch key {
	case "tag", "newTag":
		return PartTag
	case "newName", "repository":
		return PartName
	case "digest":
		return PartDigest
	}
	return PartRef
}
