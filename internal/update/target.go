package update

import (
	"fmt"
	"strings"
)

// Workload names a Kubernetes object: Kind/Namespace/Name. Namespace is "" when the
// manifest does not set one.
type Workload struct {
	Kind      string
	Namespace string
	Name      string
}

// String formats the workload as Kind/namespace/name (Kind/name without a namespace).
func (w Workload) String() string {
	if w.Kind == "" && w.Name == "" {
		return ""
	}
	if w.Name == "" {
		return w.Kind
	}
	if w.Namespace == "" {
		return w.Kind + "/" + w.Name
	}
	return w.Kind + "/" + w.Namespace + "/" + w.Name
}

// Source says how a target was found.
type Source string

// Sources of targets.
const (
	SourceContainer     Source = "container"       // spec…containers[]
	SourceInitContainer Source = "initContainer"   // spec…initContainers[]
	SourceHelmValues    Source = "helm-values"     // a HelmRelease spec.values image shape
	SourceHelmMapping   Source = "helm-mapping"    // a HelmRelease repository/tag.fluxcd.io/<alias> mapping
	SourceMarker        Source = "imagepolicy"     // a # {"$imagepolicy": "ns:name"} marker
	SourceInlineMarker  Source = "imagebot-inline" // a # {"$imagebot": "<policy>"} marker
)

// Part is a bit set of the pieces of an image reference that one scalar holds:
// [registry/]repository[:tag][@digest].
type Part uint8

// Parts of an image reference. A field holds a contiguous run of them.
const (
	PartRegistry   Part = 1 << iota // registry host[:port]
	PartRepository                  // repository path (with the registry when no field holds it apart)
	PartTag                         // tag
	PartDigest                      // digest (sha256:…)

	// PartRef is a whole reference: registry/repository:tag@digest.
	PartRef = PartRegistry | PartRepository | PartTag | PartDigest
	// PartName is the repository with its registry (Flux v2's ":name" marker).
	PartName = PartRegistry | PartRepository
)

// String names the part set, e.g. "ref", "name", "tag", "registry", "repository:tag".
func (p Part) String() string {
	switch p {
	case PartRef:
		return "ref"
	case PartName:
		return "name"
	}
	var names []string
	for _, x := range []struct {
		p Part
		n string
	}{{PartRegistry, "registry"}, {PartRepository, "repository"}, {PartTag, "tag"}, {PartDigest, "digest"}} {
		if p&x.p != 0 {
			names = append(names, x.n)
		}
	}
	return strings.Join(names, ":")
}

// Field is one YAML scalar that holds (part of) a target's image reference: what an edit
// rewrites.
type Field struct {
	Part   Part   // which pieces of the reference the scalar holds
	Path   string // YAML path in its document, e.g. spec.template.spec.containers[1].image
	Line   int    // 1-based line of the scalar
	Column int    // 1-based column (in characters, as YAML counts) of the scalar
	Value  string // the scalar's current value
	// TagDigest is set when a PartTag field holds "tag@digest" (some Helm charts).
	TagDigest bool
}

// Target is one image reference that automation may change: a container of a workload,
// an image in HelmRelease values, or a scalar carrying a marker comment.
type Target struct {
	File      string   // repository-relative, slash-separated
	Line      int      // line of the first field
	Doc       int      // 0-based index of the YAML document in the file
	Workload  Workload // the object holding the image; zero for markers outside an object
	Container string   // container name; Helm: "chart-image", the values key or the alias; markers: the policy name or ""
	Source    Source

	// Image is the current reference, assembled from Fields (and, for a tag-only marker,
	// the repository from the marker's policy or the surrounding mapping).
	Image string

	Policy       string // raw policy spec ("" for none: not automated by policy)
	PolicySource string // where Policy came from: an annotation key, "default", or the marker text
	PolicyErr    error  // non-nil when the spec was rejected: never automate this target

	// EditErr is non-nil when a field holding the tag or digest cannot be edited in place
	// (anchored or reached through an alias, block or multi-line scalar; it wraps
	// ErrUnsupported): never automate this target, Apply would refuse it.
	EditErr error

	Automated  bool // the workload (or a marker) opts in to automation
	Locked     bool
	LockedMsg  string
	LockedUser string
	Ignored    bool // the workload carries ignore: "true"

	Fields []Field

	// PullSecrets and ServiceAccount are the pod spec's imagePullSecrets names and
	// serviceAccountName, for workload containers: whose registry credentials to use.
	PullSecrets    []string
	ServiceAccount string
}

// ID identifies the target within a commit: file, document index and the path of its
// first field.
func (t Target) ID() string {
	path := ""
	if len(t.Fields) > 0 {
		path = t.Fields[0].Path
	}
	return fmt.Sprintf("%s#%d:%s", t.File, t.Doc, path)
}

// String describes the target for logs and messages.
func (t Target) String() string {
	s := fmt.Sprintf("%s:%d", t.File, t.Line)
	if w := t.Workload.String(); w != "" {
		s += " " + w
	}
	if t.Container != "" {
		s += " " + t.Container
	}
	return s + " " + t.Image
}
