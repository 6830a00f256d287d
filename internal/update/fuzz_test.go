package update

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// addSeeds adds every YAML file of the golden corpus to the fuzz corpus.
func addSeeds(f *testing.F, add func(data []byte)) {
	for _, pat := range []string{"testdata/*/*.yaml", "testdata/*/*.yml"} {
		files, _ := filepath.Glob(pat)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				add(data)
			}
		}
	}
}

// fuzzTag turns arbitrary bytes into a valid tag.
func fuzzTag(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 60 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case (r == '.' || r == '-') && b.Len() > 0:
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "v1"
	}
	return b.String()
}

// FuzzEdit: for any input, Find and EditBytes never panic; an edit either fails with an
// error (and no output) or its result re-parses to the same documents except the edited
// values, the bytes differ only inside the edited values, and every target reads as
// expected afterwards.
func FuzzEdit(f *testing.F) {
	addSeeds(f, func(data []byte) { f.Add(data, "1.2.3", uint8(0)) })
	f.Add([]byte("image: nginx # {\"$imagebot\": \"glob:*\"}\n"), "latest", uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, tagSeed string, pick uint8) {
		fd := testFinder()
		targets, _ := fd.FindBytes("f.yaml", data)
		if len(targets) == 0 {
			return
		}
		tag := fuzzTag(tagSeed)
		var ds []Decision
		for i, tg := range targets {
			if pick != 0 && i%int(pick%4+1) != 0 {
				continue
			}
			cur := splitRef(tg.Image)
			next := cur
			next.Tag, next.Digest = tag, ""
			if cur.Digest != "" && pick%2 == 1 {
				next.Digest = "sha256:" + strings.Repeat("ab", 32)
			}
			ref, err := name.ParseReference(next.String())
			if err != nil {
				continue
			}
			ds = append(ds, Decision{Target: tg, Image: ref})
		}
		out, changes, err := fd.EditBytes("f.yaml", data, ds)
		if err != nil {
			var ee *EditError
			if !errors.As(err, &ee) {
				t.Fatalf("error is not an EditError: %v", err)
			}
			// Find and the editor apply the same rules: a value the editor refuses as
			// unsupported was flagged by Find (EditErr), and one Find flagged is refused.
			if errors.Is(err, ErrUnsupported) && !anyEditErr(ds) {
				t.Fatalf("editor refused a target Find called editable: %v", err)
			}
			if out != nil {
				t.Fatal("output returned with an error")
			}
			return
		}
		for _, d := range ds {
			if d.Target.EditErr != nil && d.Target.Image != d.Image.String() {
				for _, c := range changes {
					if c.Line == d.Target.Line && c.Old == d.Target.Image {
						t.Fatalf("a target with EditErr (%v) was edited", d.Target.EditErr)
					}
				}
			}
		}
		checkEdit(t, fd, data, out, targets, changes)
	})
}

func anyEditErr(ds []Decision) bool {
	for _, d := range ds {
		if d.Target.EditErr != nil {
			return true
		}
	}
	return false
}

// checkEdit checks an edit independently of the editor's own verification.
func checkEdit(t *testing.T, fd *Finder, before, after []byte, targets []Target, changes []Change) {
	t.Helper()
	if len(changes) == 0 {
		if !bytes.Equal(before, after) {
			t.Fatal("bytes changed without a change")
		}
		return
	}
	// 1. The bytes differ only inside the edited values: every differing region starts at
	// or after the start of an edited scalar on the same line, and no line break moved.
	li := newLineIndex(before)
	starts := map[int]int{} // line -> smallest offset of an edited scalar on it
	for _, c := range changes {
		for _, fc := range c.Fields {
			tg := findTarget(targets, c)
			for _, fl := range tg.Fields {
				if fl.Path == fc.Path {
					off, err := li.offset(fl.Line, fl.Column)
					if err != nil {
						t.Fatal(err)
					}
					if s, ok := starts[fl.Line]; !ok || off < s {
						starts[fl.Line] = off
					}
				}
			}
		}
	}
	la, lb := newLineIndex(before), newLineIndex(after)
	if len(la.start) != len(lb.start) {
		t.Fatalf("line count changed: %d -> %d", len(la.start), len(lb.start))
	}
	for i := range la.start {
		ea, eb := len(before), len(after)
		if i+1 < len(la.start) {
			ea, eb = la.start[i+1], lb.start[i+1]
		}
		a, b := before[la.start[i]:ea], after[lb.start[i]:eb]
		if bytes.Equal(a, b) {
			continue
		}
		s, ok := starts[i+1]
		if !ok {
			t.Fatalf("line %d changed but holds no edited value:\n%q\n%q", i+1, a, b)
		}
		prefix := s - la.start[i]
		if !bytes.Equal(a[:prefix], b[:min(prefix, len(b))]) {
			t.Fatalf("line %d changed before the edited value:\n%q\n%q", i+1, a, b)
		}
		if !bytes.HasSuffix(b, trailingAfterValue(a)) {
			t.Fatalf("line %d: what follows the value changed:\n%q\n%q", i+1, a, b)
		}
	}
	// 2. The documents are the same but for the edited values: every target is still there,
	// and reads its new image (changed) or its old one.
	newImage := map[string]string{}
	for _, c := range changes {
		newImage[findTarget(targets, c).ID()] = c.New
	}
	after2, probs := fd.FindBytes("f.yaml", after)
	for _, p := range probs {
		if errors.Is(p, ErrMalformed) || errors.Is(p, ErrDuplicateKey) {
			t.Fatalf("edited file: %v", p)
		}
	}
	if len(after2) != len(targets) {
		t.Fatalf("%d targets before, %d after", len(targets), len(after2))
	}
	for i, tg := range targets {
		want := tg.Image
		if n, ok := newImage[tg.ID()]; ok {
			want = n
		}
		if after2[i].ID() != tg.ID() || after2[i].Image != want {
			t.Fatalf("target %s reads %s, want %s", tg.ID(), after2[i].Image, want)
		}
	}
	// 3. parse(before) and parse(after) differ only at the edited scalars: every node has
	// the same kind, tag, value, style, anchor, comments, line and column, except that an
	// edited scalar reads its new value as a string (a plain one may become double-quoted,
	// and a plain number, tag: 1.19, a string)
	// and the nodes after an edited scalar on its line move by what it grew or shrank.
	edited := map[[2]int]string{} // line, column in before -> new value
	for _, c := range changes {
		tg := findTarget(targets, c)
		for _, fc := range c.Fields {
			for _, fl := range tg.Fields {
				if fl.Path == fc.Path {
					edited[[2]int{fl.Line, fl.Column}] = fc.New
				}
			}
		}
	}
	if err := sameButEdited(before, after, edited); err != nil {
		t.Fatalf("%v\n--- before\n%s\n--- after\n%s", err, before, after)
	}
}

// parseDocs decodes every document of data with yaml.v3.
func parseDocs(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, &n)
	}
}

// sameButEdited compares the node trees of before and after, node by node, independently
// of the editor's own verification. edited maps the line and column (in before) of each
// edited scalar to its new value.
func sameButEdited(before, after []byte, edited map[[2]int]string) error {
	da, err := parseDocs(before)
	if err != nil {
		return nil // the editor only edits files that parse; FindBytes found targets in a partial parse
	}
	db, err := parseDocs(after)
	if err != nil {
		return fmt.Errorf("the edited file does not parse: %v", err)
	}
	if len(da) != len(db) {
		return fmt.Errorf("%d documents before, %d after", len(da), len(db))
	}
	c := nodeCompare{edited: edited, shift: map[[2]int]int{}, seen: map[[2]int]bool{}, lineGrowth: map[int]int{}}
	// After the last edited scalar of a line, nodes move by what the whole line grew.
	la, lb := newLineIndex(before), newLineIndex(after)
	for pos := range edited {
		if pos[0] <= len(la.start) && pos[0] <= len(lb.start) {
			c.lineGrowth[pos[0]] = lineRunes(lb, pos[0]) - lineRunes(la, pos[0])
		}
	}
	for i := range da {
		if err := c.same(da[i], db[i]); err != nil {
			return fmt.Errorf("document %d: %v", i, err)
		}
	}
	for pos := range edited {
		if !c.seen[pos] {
			return fmt.Errorf("edited scalar at %d:%d not found in the tree", pos[0], pos[1])
		}
	}
	return nil
}

// lineRunes counts the characters of a 1-based line, its break excluded.
func lineRunes(li *lineIndex, line int) int {
	start := li.start[line-1]
	return utf8.RuneCount(li.data[start:lineEnd(li.data, start)])
}

type nodeCompare struct {
	edited     map[[2]int]string
	lineGrowth map[int]int // edited line -> characters after - before
	// shift records, per line and edited column, how far the nodes after that edited
	// scalar moved: all of them must move by the same amount.
	shift map[[2]int]int
	seen  map[[2]int]bool
}

// wantShift checks that a node at line:col (before) is at line:col2 (after): unmoved
// before the first edited scalar of its line, else moved by the same amount as every other
// node after the same edited scalar.
func (c *nodeCompare) wantShift(line, col, col2 int) error {
	last := 0 // column of the last edited scalar before col on this line
	for pos := range c.edited {
		if pos[0] == line && pos[1] < col && pos[1] > last {
			last = pos[1]
		}
	}
	if last == 0 {
		if col != col2 {
			return fmt.Errorf("node at %d:%d moved to column %d, before any edited value", line, col, col2)
		}
		return nil
	}
	key := [2]int{line, last}
	lastOnLine := true
	for pos := range c.edited {
		if pos[0] == line && pos[1] > last {
			lastOnLine = false
		}
	}
	if g, ok := c.lineGrowth[line]; ok && lastOnLine && col2-col != g {
		return fmt.Errorf("node at %d:%d moved by %d, the line grew by %d", line, col, col2-col, g)
	}
	if d, ok := c.shift[key]; ok && d != col2-col {
		return fmt.Errorf("node at %d:%d moved by %d, others after the value at column %d by %d", line, col, col2-col, last, d)
	}
	c.shift[key] = col2 - col
	return nil
}

func (c *nodeCompare) same(a, b *yaml.Node) error {
	if a == nil || b == nil {
		if a != b {
			return errors.New("node added or removed")
		}
		return nil
	}
	at := fmt.Sprintf("node at %d:%d", a.Line, a.Column)
	if a.Kind != b.Kind || len(a.Content) != len(b.Content) {
		return fmt.Errorf("%s changed shape", at)
	}
	if a.Anchor != b.Anchor || a.HeadComment != b.HeadComment || a.LineComment != b.LineComment || a.FootComment != b.FootComment {
		return fmt.Errorf("%s: anchor or comments changed", at)
	}
	if a.Line != b.Line {
		return fmt.Errorf("%s moved to line %d", at, b.Line)
	}
	// An edited scalar's own column does not move either: what precedes it is unchanged.
	pos := [2]int{a.Line, a.Column}
	if nv, ok := c.edited[pos]; ok && a.Kind == yaml.ScalarNode {
		c.seen[pos] = true
		if err := c.wantShift(a.Line, a.Column, b.Column); err != nil {
			return err
		}
		if b.Value != nv || b.ShortTag() != "!!str" {
			return fmt.Errorf("%s reads %q (%s), want %q", at, b.Value, b.ShortTag(), nv)
		}
		if a.Style != b.Style && !(a.Style == 0 && b.Style == yaml.DoubleQuotedStyle) {
			return fmt.Errorf("%s changed style from %v to %v", at, a.Style, b.Style)
		}
		return nil
	}
	if err := c.wantShift(a.Line, a.Column, b.Column); err != nil {
		return err
	}
	if a.Value != b.Value || a.Tag != b.Tag || a.Style != b.Style {
		return fmt.Errorf("%s changed from %q (%s, style %v) to %q (%s, style %v)", at, a.Value, a.Tag, a.Style, b.Value, b.Tag, b.Style)
	}
	if a.Kind == yaml.AliasNode {
		if (a.Alias == nil) != (b.Alias == nil) {
			return fmt.Errorf("%s: alias changed", at)
		}
		if a.Alias != nil && (a.Alias.Line != b.Alias.Line || a.Alias.Anchor != b.Alias.Anchor) {
			return fmt.Errorf("%s: alias now refers to %d:%d", at, b.Alias.Line, b.Alias.Column)
		}
	}
	for i := range a.Content {
		if err := c.same(a.Content[i], b.Content[i]); err != nil {
			return err
		}
	}
	return nil
}

// trailingAfterValue is what follows a scalar on its line: from the comment (or the line
// break) on, which an edit must keep.
func trailingAfterValue(line []byte) []byte {
	if i := bytes.Index(line, []byte(" #")); i >= 0 {
		return line[i:]
	}
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		return line[i:]
	}
	return nil
}

func findTarget(targets []Target, c Change) Target {
	for _, t := range targets {
		if t.Line == c.Line && t.Image == c.Old {
			return t
		}
	}
	return Target{}
}

// FuzzQuote: a value rendered for a scalar style reads back as the same string.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"nginx:1.16", "1.20", "true", "a'b", `a"b\c`, "#x", " lead", "é✓", "x: y", "- a", "@x", "null", "~"} {
		for st := uint8(0); st < 3; st++ {
			f.Add(s, st, st == 1)
		}
	}
	f.Fuzz(func(t *testing.T, v string, st uint8, flow bool) {
		style := []yaml.Style{0, yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle}[st%3]
		text, err := quoteFor(v, style, flow)
		if err != nil {
			return
		}
		doc := "k: " + text + "\n"
		if flow {
			doc = "{k: " + text + "}\n"
		}
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
			t.Fatalf("%q rendered as %s does not parse: %v", v, text, err)
		}
		got := n.Content[0].Content[1]
		if got.Value != v || got.Tag != "!!str" {
			t.Fatalf("%q rendered as %s reads %q (%s)", v, text, got.Value, got.Tag)
		}
		// And the scalar scanner finds exactly the rendered bytes.
		sp, err := scalarSpan(newLineIndex([]byte(doc)), got, flow)
		if err != nil {
			if strings.ContainsAny(v, "\n\r\u0085\u2028\u2029") {
				return
			}
			t.Fatalf("%q rendered as %s: %v", v, text, err)
		}
		if doc[sp.start:sp.end] != text {
			t.Fatalf("span %q, rendered %q", doc[sp.start:sp.end], text)
		}
	})
}

// FuzzEditShapes builds workloads from fuzzed pieces (indentation, quoting, line endings,
// comments, multi-byte text before the value on its line, anchors elsewhere) so the editor's
// byte arithmetic is exercised on valid YAML, and checks the same invariants as FuzzEdit.
func FuzzEditShapes(f *testing.F) {
	f.Add(uint8(2), uint8(0), false, "keep me", "héllo ✓", "1.2.4", true)
	f.Add(uint8(4), uint8(1), true, "", "\t", "v2", false)
	f.Add(uint8(3), uint8(2), true, "# nested", "日本語", "1.20", true)
	f.Fuzz(func(t *testing.T, indent, style uint8, crlf bool, comment, before, tag string, finalNL bool) {
		ind := strings.Repeat(" ", int(indent%6)+1)
		quote := func(s string) string {
			switch style % 3 {
			case 1:
				return "'" + strings.ReplaceAll(s, "'", "''") + "'"
			case 2:
				return doubleQuote(s)
			}
			return s
		}
		c := strings.Map(func(r rune) rune {
			if r == '\n' || r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029 || r < 0x20 || !printable(r) {
				return -1
			}
			return r
		}, comment)
		if c != "" {
			c = " # " + c
		}
		if !utf8Valid(before) {
			before = "x"
		}
		lines := []string{
			"apiVersion: apps/v1",
			"kind: Deployment",
			"metadata:",
			ind + "name: app",
			ind + "annotations:",
			ind + ind + `imagebot.dev/automated: "true"`,
			ind + ind + "note: &n " + doubleQuote(before),
			"spec:",
			ind + "template:",
			ind + ind + "spec:",
			ind + ind + ind + "containers:",
			ind + ind + ind + "- name: app",
			ind + ind + ind + "  image: " + quote("ghcr.io/org/app:1.0.0") + c,
			ind + ind + ind + "- {name: " + doubleQuote(before) + ", image: " + quote("ghcr.io/org/side:1.0.0") + "}" + c,
			ind + ind + ind + "- name: third",
			ind + ind + ind + "  env: [{name: X, value: *n}]",
			ind + ind + ind + "  image: " + quote("ghcr.io/org/third@sha256:"+strings.Repeat("0", 64)),
		}
		eol := "\n"
		if crlf {
			eol = "\r\n"
		}
		doc := strings.Join(lines, eol)
		if finalNL {
			doc += eol
		}
		data := []byte(doc)
		fd := testFinder()
		targets, probs := fd.FindBytes("f.yaml", data)
		if len(targets) != 3 {
			t.Fatalf("want 3 targets, got %d (%v) in\n%s", len(targets), probs, doc)
		}
		nt := fuzzTag(tag)
		var ds []Decision
		for _, tg := range targets {
			p := splitRef(tg.Image)
			if p.Digest != "" {
				p.Digest = "sha256:" + strings.Repeat("f", 64)
			} else {
				p.Tag = nt
			}
			ref, err := name.ParseReference(p.String())
			if err != nil {
				t.Fatal(err)
			}
			ds = append(ds, Decision{Target: tg, Image: ref})
		}
		out, changes, err := fd.EditBytes("f.yaml", data, ds)
		if err != nil {
			t.Fatalf("edit failed: %v\n%s", err, doc)
		}
		checkEdit(t, fd, data, out, targets, changes)
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
