package update

import (
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// ReleaseContainerName is the container name of an image set at the top level of a
// HelmRelease's spec.values (Flux v1's name for it).
const ReleaseContainerName = "chart-image"

// helmGroups are the API groups of HelmRelease: Flux v1's helm-operator (helm.fluxcd.io,
// and flux.weave.works before it) and Flux v2's helm-controller (helm.toolkit.fluxcd.io).
var helmGroups = map[string]bool{"helm.fluxcd.io": true, "flux.weave.works": true, "helm.toolkit.fluxcd.io": true}

// helmRelease finds the images in a HelmRelease's spec.values: the shapes Flux v1
// interpreted (top level, or one key down) and the annotation mappings.
func (s *scanner) helmRelease(obj *yaml.Node, path string, w Workload, ann *annotations, aliased bool) []*target {
	spec, al := mapMapping(obj, "spec")
	values, al2 := mapMapping(spec, "values")
	aliased = aliased || al || al2
	vpath := joinPath(path, "spec.values")
	byName := map[string]*target{}
	var names []string
	add := func(name string, t *target) {
		if _, dup := byName[name]; !dup {
			names = append(names, name)
		}
		byName[name] = t
	}
	if values != nil {
		if t := s.helmShape(values, vpath, w, ReleaseContainerName, aliased); t != nil {
			add(ReleaseContainerName, t)
		}
		for i := 0; i+1 < len(values.Content); i += 2 {
			k := values.Content[i].Value
			v, al3 := deref(values.Content[i+1])
			if v.Kind != yaml.MappingNode || k == "image" {
				continue
			}
			if t := s.helmShape(v, joinPath(vpath, k), w, k, aliased || al3); t != nil {
				add(k, t)
			}
		}
	}
	// Mappings from annotations override what was found by shape, by name and by field.
	aliases := make([]string, 0, len(ann.mappings))
	for a := range ann.mappings {
		aliases = append(aliases, a)
	}
	sort.Strings(aliases)
	for _, alias := range aliases {
		t, err := s.helmMapped(values, vpath, w, alias, ann.mappings[alias], aliased)
		if err != nil {
			m := ann.mappings[alias]
			line, key := m.repository.line, m.repository.key
			if key == "" {
				line, key = max(m.registry.line, m.tag.line), m.registry.key+m.tag.key
			}
			s.problems = append(s.problems, Problem{File: s.file, Line: line, Field: "metadata.annotations[" + key + "]", Err: err})
			continue
		}
		for _, n := range names {
			if o := byName[n]; o != nil && n != alias && sharesNode(o, t) {
				byName[n] = nil
			}
		}
		add(alias, t)
	}
	known := map[string]bool{}
	var out []*target
	for _, n := range names {
		t := byName[n]
		if t == nil {
			continue
		}
		known[n] = true
		applyAnnotations(t, ann)
		spec, src, line := ann.policyFor(n)
		s.setPolicy(t, spec, src, line, "metadata.annotations["+src+"]")
		out = append(out, t)
	}
	s.problems = append(s.problems, ann.checkContainers(known)...)
	return out
}

func sharesNode(a, b *target) bool {
	for _, x := range a.nodes {
		for _, y := range b.nodes {
			if x.node == y.node {
				return true
			}
		}
	}
	return false
}

// helmShape interprets a values mapping as a container, as Flux v1 did:
//
//	image: repo/image:tag
//	image: repo/image            + tag: v1           (+ registry: host)
//	image: {repository: repo/image, tag: v1}         (+ registry, + digest)
func (s *scanner) helmShape(m *yaml.Node, path string, w Workload, name string, aliased bool) *target {
	_, img, al := mapGet(m, "image")
	if img == nil {
		return nil
	}
	slots := [4]*yaml.Node{}
	paths := [4]string{}
	parents := [4]*yaml.Node{}
	switch {
	case isStr(img):
		slots[1], paths[1], parents[1] = img, joinPath(path, "image"), m
		if _, v, _ := mapGet(m, "registry"); isStr(v) {
			slots[0], paths[0], parents[0] = v, joinPath(path, "registry"), m
		}
		if _, v, _ := mapGet(m, "tag"); isTagValue(v) {
			slots[2], paths[2], parents[2] = v, joinPath(path, "tag"), m
		}
	case img.Kind == yaml.MappingNode:
		ipath := joinPath(path, "image")
		for i, key := range []string{"registry", "repository", "tag", "digest"} {
			if _, v, _ := mapGet(img, key); isStr(v) || key == "tag" && isTagValue(v) {
				slots[i], paths[i], parents[i] = v, joinPath(ipath, key), img
			}
		}
		if slots[1] == nil {
			return nil
		}
	default:
		return nil
	}
	t, err := s.slotTarget(slots, paths, parents, w, name, SourceHelmValues, aliased || al)
	if err != nil {
		return nil // Flux v1: a value that is no image reference is not a container
	}
	return t
}

// helmMapped resolves a Flux v1 annotation mapping (paths below spec.values).
func (s *scanner) helmMapped(values *yaml.Node, vpath string, w Workload, alias string, m *helmMapping, aliased bool) (*target, error) {
	if m.repository.key == "" {
		return nil, fmt.Errorf("%w: %q has no %s%s annotation", ErrBadMapping, alias, RepositoryPrefix, alias)
	}
	slots := [4]*yaml.Node{}
	paths := [4]string{}
	parents := [4]*yaml.Node{}
	for slot, av := range []annotationValue{m.registry, m.repository, m.tag} {
		if av.key == "" {
			continue
		}
		n, parent, al := lookupPath(values, av.value)
		if !isStr(n) && !(slot == 2 && isTagValue(n)) {
			return nil, fmt.Errorf("%w: %s: spec.values.%s is not a string", ErrBadMapping, av.key, av.value)
		}
		aliased = aliased || al
		slots[slot], paths[slot], parents[slot] = n, joinPath(vpath, av.value), parent
	}
	t, err := s.slotTarget(slots, paths, parents, w, alias, SourceHelmMapping, aliased)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMapping, err)
	}
	return t, nil
}

// lookupPath follows a dot-separated path of mapping keys.
func lookupPath(m *yaml.Node, path string) (n, parent *yaml.Node, aliased bool) {
	n = m
	for _, key := range strings.Split(path, ".") {
		var al bool
		parent = n
		_, n, al = mapGet(n, key)
		aliased = aliased || al
		if n == nil {
			return nil, nil, false
		}
	}
	return n, parent, aliased
}

// slotTarget builds a target from the scalars holding registry, repository, tag and digest
// (any may be absent but the repository). Each field holds its own part and the parts of
// the absent slots after it, up to the next present one: "image: repo:tag" beside
// "registry: host" holds repository and tag.
func (s *scanner) slotTarget(slots [4]*yaml.Node, paths [4]string, parents [4]*yaml.Node, w Workload, name string, src Source, aliased bool) (*target, error) {
	bits := [4]Part{PartRegistry, PartRepository, PartTag, PartDigest}
	var fields []Field
	var nodes []fieldNode
	for i, n := range slots {
		if n == nil {
			continue
		}
		part := bits[i]
		if i == 1 {
			if slots[0] == nil {
				part |= PartRegistry
			}
			for j := 2; j < 4 && slots[j] == nil; j++ {
				part |= bits[j]
			}
		}
		f, fn := field(n, part, paths[i], parents[i], aliased)
		fields = append(fields, f)
		nodes = append(nodes, fn)
	}
	return s.newTarget(w, name, src, fields, nodes, refParts{})
}

// isTagValue reports whether n can hold a tag: a string, or a number that YAML resolved
// (tag: 1.19). Edits write a number-like tag quoted, so it stays a string.
func isTagValue(n *yaml.Node) bool {
	return isStr(n) || n != nil && n.Kind == yaml.ScalarNode && (tagOf(n) == "!!int" || tagOf(n) == "!!float")
}
