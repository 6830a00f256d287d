package update

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// refParts is an image reference split the way it is written: nothing is added or
// canonicalised, so joining the parts gives back the same bytes.
type refParts struct {
	Registry   string // "" when the reference names no registry
	Repository string
	Tag        string
	Digest     string // "sha256:…", without the "@"
}

// splitRef splits a reference as written: [registry/]repository[:tag][@digest]. The first
// path component is a registry when it holds a "." or a ":" or is "localhost" (the rule
// docker and go-containerregistry use).
func splitRef(s string) refParts {
	var p refParts
	if i := strings.IndexByte(s, '@'); i >= 0 {
		p.Digest = s[i+1:]
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i+1:], "/") {
		p.Tag = s[i+1:]
		s = s[:i]
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		first := s[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			p.Registry = first
			s = s[i+1:]
		}
	}
	p.Repository = s
	return p
}

// TagOf returns the tag of an image reference as written ("" when it has none:
// "repo@sha256:…"); a digest after the tag is ignored.
func TagOf(ref string) string { return splitRef(ref).Tag }

// name returns registry/repository (repository alone without a registry).
func (p refParts) name() string {
	if p.Registry == "" {
		return p.Repository
	}
	return p.Registry + "/" + p.Repository
}

// String joins the parts.
func (p refParts) String() string {
	s := p.name()
	if p.Tag != "" {
		s += ":" + p.Tag
	}
	if p.Digest != "" {
		s += "@" + p.Digest
	}
	return s
}

// get returns the text of the given part set, joined with its separators.
func (p refParts) get(part Part) string {
	var b strings.Builder
	prev := false
	if part&PartRegistry != 0 && p.Registry != "" {
		b.WriteString(p.Registry)
		prev = true
	}
	if part&PartRepository != 0 {
		if prev {
			b.WriteByte('/')
		}
		b.WriteString(p.Repository)
		prev = true
	}
	if part&PartTag != 0 && p.Tag != "" {
		if prev {
			b.WriteByte(':')
		}
		b.WriteString(p.Tag)
		prev = true
	}
	if part&PartDigest != 0 && p.Digest != "" {
		if prev {
			b.WriteByte('@')
		}
		b.WriteString(p.Digest)
	}
	return b.String()
}

// set stores the text of a field holding the given part set into p.
func (p *refParts) set(part Part, v string) {
	if part == PartRegistry {
		p.Registry = v
		return
	}
	if part == PartTag {
		p.Tag = v
		return
	}
	if part == PartDigest {
		p.Digest = v
		return
	}
	if part == PartTag|PartDigest {
		if i := strings.IndexByte(v, '@'); i >= 0 {
			p.Tag, p.Digest = v[:i], v[i+1:]
		} else {
			p.Tag = v
		}
		return
	}
	// A field that starts with the repository: split what it holds.
	q := splitRef(v)
	if part&PartRegistry == 0 {
		// registry held apart: the whole path is repository
		q.Repository = q.name()
		q.Registry = ""
	} else {
		p.Registry = q.Registry
	}
	p.Repository = q.Repository
	if part&PartTag != 0 {
		p.Tag = q.Tag
	}
	if part&PartDigest != 0 {
		p.Digest = q.Digest
	}
}

// composeRef assembles the current reference from a target's fields. base supplies the
// parts that no field holds (e.g. the repository of a tag-only marker).
func composeRef(fields []Field, base refParts) refParts {
	p := base
	for _, f := range fields {
		part := f.Part
		if f.TagDigest {
			part |= PartDigest
		}
		p.set(part, f.Value)
	}
	return p
}

// sameRepository reports whether a and b name the same repository once canonicalised
// (nginx and index.docker.io/library/nginx are the same).
func sameRepository(a, b refParts) bool {
	if a.name() == b.name() {
		return true
	}
	ra, err1 := name.NewRepository(a.name())
	rb, err2 := name.NewRepository(b.name())
	return err1 == nil && err2 == nil && ra.Name() == rb.Name()
}

// validRef reports whether s parses as an image reference.
func validRef(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidImage)
	}
	if _, err := name.ParseReference(s); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidImage, s, err)
	}
	return nil
}

// renderFields computes the new text of every field for a change from cur to next. It keeps
// the repository as written when next names the same repository (so "nginx" does not become
// "index.docker.io/library/nginx"), and fails with ErrCannotExpress when next changes a part
// no field holds.
func renderFields(fields []Field, cur refParts, next refParts) ([]string, error) {
	var held Part
	for _, f := range fields {
		held |= f.Part
		if f.TagDigest {
			held |= PartDigest
		}
	}
	want := next
	if sameRepository(cur, next) {
		want.Registry, want.Repository = cur.Registry, cur.Repository
	}
	if want.name() != cur.name() && held&PartRepository == 0 {
		return nil, fmt.Errorf("%w: repository %s -> %s, fields hold only %s", ErrCannotExpress, cur.name(), want.name(), held)
	}
	if want.Registry != cur.Registry && held&PartRegistry == 0 {
		return nil, fmt.Errorf("%w: registry %q -> %q", ErrCannotExpress, cur.Registry, want.Registry)
	}
	if want.Tag != cur.Tag && held&PartTag == 0 {
		return nil, fmt.Errorf("%w: tag %q -> %q, fields hold only %s", ErrCannotExpress, cur.Tag, want.Tag, held)
	}
	if want.Digest != cur.Digest && held&PartDigest == 0 {
		return nil, fmt.Errorf("%w: digest change, fields hold only %s", ErrCannotExpress, held)
	}
	out := make([]string, len(fields))
	for i, f := range fields {
		part := f.Part
		if f.TagDigest {
			part |= PartDigest
		}
		switch {
		case part == PartRegistry && want.Registry == "":
			// A registry field must hold something: Docker Hub is docker.io.
			out[i] = "docker.io"
		case part == PartTag && want.Tag == "" && cur.Tag != "":
			return nil, fmt.Errorf("%w: the new reference has no tag but %s holds one", ErrCannotExpress, f.Path)
		default:
			out[i] = want.get(part)
		}
	}
	return out, nil
}
