package update

import (
	"fmt"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Annotation prefixes, highest precedence first. The same suffixes work after each:
// automated, locked, locked_msg, locked_user, ignore, tag.<container>.
var Prefixes = []string{"imagebot.dev/", "fluxcd.io/", "flux.weave.works/"}

// Flux v1 annotation prefixes that take a container (or HelmRelease alias) after the slash.
const (
	FilterPrefix     = "filter.fluxcd.io/"     // filter.fluxcd.io/<container>: <policy> (lowest precedence)
	RegistryPrefix   = "registry.fluxcd.io/"   // HelmRelease: path of the registry in spec.values
	RepositoryPrefix = "repository.fluxcd.io/" // HelmRelease: path of the repository in spec.values
	TagMapPrefix     = "tag.fluxcd.io/"        // HelmRelease: path of the tag in spec.values
)

// DefaultPolicy is the policy of a container with no tag annotation on an automated
// workload (Flux v1's default: any tag, newest first).
const DefaultPolicy = "glob:*"

// annotationValue is one annotation that set a setting.
type annotationValue struct {
	key   string
	value string
	node  *yaml.Node // the value node
	line  int
	prec  int // index in Prefixes; len(Prefixes) for filter.fluxcd.io
}

// helmMapping is a Flux v1 HelmRelease image mapping: paths below spec.values.
type helmMapping struct {
	registry, repository, tag annotationValue
}

// annotations is what a workload's metadata.annotations say about automation.
type annotations struct {
	node     *yaml.Node // the annotations mapping, nil when absent
	metadata *yaml.Node

	automated, locked, ignore *annotationValue
	lockedMsg, lockedUser     *annotationValue
	tags                      map[string]*annotationValue // container -> policy
	mappings                  map[string]*helmMapping     // alias -> paths
	prefixUsed                string                      // the prefix of the first automation annotation seen
	conflicts                 []Problem
	file                      string
	path                      string
}

func (a *annotations) isAutomated() bool { return a.automated != nil && a.automated.value == "true" }
func (a *annotations) isLocked() bool    { return a.locked != nil && a.locked.value == "true" }
func (a *annotations) isIgnored() bool   { return a.ignore != nil && a.ignore.value == "true" }

// readAnnotations reads the automation annotations of an object (a mapping with metadata).
func readAnnotations(file string, obj *yaml.Node) *annotations {
	a := &annotations{file: file, tags: map[string]*annotationValue{}, mappings: map[string]*helmMapping{}}
	a.metadata, _ = mapMapping(obj, "metadata")
	a.node, _ = mapMapping(a.metadata, "annotations")
	if a.node == nil {
		return a
	}
	a.path = "metadata.annotations"
	for i := 0; i+1 < len(a.node.Content); i += 2 {
		k, v := a.node.Content[i], a.node.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			continue
		}
		av := annotationValue{key: k.Value, value: v.Value, node: v, line: k.Line}
		a.add(av)
	}
	return a
}

func (a *annotations) add(av annotationValue) {
	key := av.key
	for prec, p := range Prefixes {
		if !strings.HasPrefix(key, p) {
			continue
		}
		av.prec = prec
		suffix := key[len(p):]
		if a.prefixUsed == "" {
			a.prefixUsed = p
		}
		switch {
		case suffix == "automated":
			a.set(&a.automated, av)
		case suffix == "locked":
			a.set(&a.locked, av)
		case suffix == "locked_msg":
			a.set(&a.lockedMsg, av)
		case suffix == "locked_user":
			a.set(&a.lockedUser, av)
		case suffix == "ignore":
			a.set(&a.ignore, av)
		case strings.HasPrefix(suffix, "tag."):
			c := suffix[len("tag."):]
			cur := a.tags[c]
			a.set(&cur, av)
			a.tags[c] = cur
		}
		return
	}
	switch {
	case strings.HasPrefix(key, FilterPrefix):
		av.prec = len(Prefixes)
		c := key[len(FilterPrefix):]
		cur := a.tags[c]
		a.set(&cur, av)
		a.tags[c] = cur
	case strings.HasPrefix(key, RegistryPrefix):
		a.mapping(key[len(RegistryPrefix):]).registry = av
	case strings.HasPrefix(key, RepositoryPrefix):
		a.mapping(key[len(RepositoryPrefix):]).repository = av
	case strings.HasPrefix(key, TagMapPrefix):
		a.mapping(key[len(TagMapPrefix):]).tag = av
	}
}

func (a *annotations) mapping(alias string) *helmMapping {
	m := a.mappings[alias]
	if m == nil {
		m = &helmMapping{}
		a.mappings[alias] = m
	}
	return m
}

// set keeps the highest-precedence spelling, and warns when spellings disagree.
func (a *annotations) set(dst **annotationValue, av annotationValue) {
	cur := *dst
	if cur != nil && cur.value != av.value {
		winner := cur.key
		if av.prec < cur.prec {
			winner = av.key
		}
		a.conflicts = append(a.conflicts, Problem{File: a.file, Line: av.line, Field: a.path + "[" + av.key + "]", Warning: true,
			Err: fmt.Errorf("disagrees with %s (%q); %s wins", cur.key, cur.value, winner)})
	}
	if cur == nil || av.prec < cur.prec {
		v := av
		*dst = &v
	}
}

// policyFor returns the policy for a container: its tag annotation, the default when the
// workload is automated, or "".
func (a *annotations) policyFor(container string) (spec, source string, line int) {
	if t := a.tags[container]; t != nil {
		return t.value, t.key, t.line
	}
	if a.isAutomated() {
		return DefaultPolicy, "default", 0
	}
	return "", "", 0
}

// checkContainers reports tag annotations that name no container of the workload.
func (a *annotations) checkContainers(known map[string]bool) []Problem {
	var ps []Problem
	for c, t := range a.tags {
		if !known[c] {
			ps = append(ps, Problem{File: a.file, Line: t.line, Field: a.path + "[" + t.key + "]",
				Err: fmt.Errorf("%w %q", ErrUnknownContainer, c)})
		}
	}
	return ps
}
