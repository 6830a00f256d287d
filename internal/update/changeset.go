package update

import (
	"fmt"
	"sort"
	"strings"
)

// FieldChange is one scalar rewritten by an edit.
type FieldChange struct {
	Path     string // YAML path in its document
	Line     int
	Old, New string // scalar values
}

// Change is one target (or one annotation) changed in one file.
type Change struct {
	File      string
	Line      int
	Workload  Workload
	Container string
	Source    Source
	Policy    string
	// Old and New are whole image references; for an annotation edit, the annotation's old
	// and new values ("" when absent).
	Old, New string
	// Annotation is the annotation key for an annotation edit, "" for an image change.
	Annotation string
	Fields     []FieldChange
}

// String describes the change on one line.
func (c Change) String() string {
	who := c.Workload.String()
	if c.Container != "" {
		who = strings.TrimSpace(who + " " + c.Container)
	}
	if who != "" {
		who = " " + who
	}
	if c.Annotation != "" {
		switch {
		case c.New == "":
			return fmt.Sprintf("%s:%d%s: remove %s", c.File, c.Line, who, c.Annotation)
		default:
			return fmt.Sprintf("%s:%d%s: %s=%q", c.File, c.Line, who, c.Annotation, c.New)
		}
	}
	return fmt.Sprintf("%s:%d%s: %s -> %s", c.File, c.Line, who, c.Old, c.New)
}

// ChangeSet is what an update or annotation edit changed, for commit messages and events.
type ChangeSet struct {
	Changes []Change // in file order, then line order
}

// Empty reports whether nothing changed (then there is nothing to commit).
func (cs *ChangeSet) Empty() bool { return cs == nil || len(cs.Changes) == 0 }

// Files returns the changed files, sorted.
func (cs *ChangeSet) Files() []string {
	if cs == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range cs.Changes {
		if !seen[c.File] {
			seen[c.File] = true
			out = append(out, c.File)
		}
	}
	sort.Strings(out)
	return out
}

// Message is a commit message: a subject line, a blank line and one line per change.
func (cs *ChangeSet) Message() string {
	if cs.Empty() {
		return ""
	}
	var b strings.Builder
	images, annots := 0, 0
	for _, c := range cs.Changes {
		if c.Annotation != "" {
			annots++
		} else {
			images++
		}
	}
	switch {
	case images == 1 && annots == 0:
		c := cs.Changes[0]
		fmt.Fprintf(&b, "Update %s to %s\n", strings.TrimSpace(c.Workload.String()+" "+c.Container), c.New)
	case images > 0:
		fmt.Fprintf(&b, "Update %d images\n", images)
	default:
		fmt.Fprintf(&b, "Change %d annotations\n", annots)
	}
	b.WriteString("\n")
	for _, c := range cs.Changes {
		b.WriteString("- " + c.String() + "\n")
	}
	return b.String()
}

func (cs *ChangeSet) sort() {
	sort.SliceStable(cs.Changes, func(i, j int) bool {
		a, b := cs.Changes[i], cs.Changes[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
}
