package update

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// exactDocs parses with yaml.v3 (nil, false on error).
func exactDocs(data []byte) ([]*yaml.Node, bool) {
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return docs, true
		}
		if err != nil {
			return nil, false
		}
		var root *yaml.Node
		if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
			root = doc.Content[0]
		}
		docs = append(docs, root)
	}
}

// sameNodes compares what fastParse promises: kinds, resolved tags, values, styles and,
// except for empty (null) values, lines and columns.
func sameNodes(a, b *yaml.Node, path string) error {
	if a == nil || b == nil {
		if a != b {
			return fmt.Errorf("%s: nil mismatch", path)
		}
		return nil
	}
	if a.Kind != b.Kind || tagOf(a) != tagOf(b) || a.Value != b.Value || a.Style != b.Style || len(a.Content) != len(b.Content) {
		return fmt.Errorf("%s: fast %d %s %q style %d (%d children), yaml.v3 %d %s %q style %d (%d children)",
			path, a.Kind, tagOf(a), a.Value, a.Style, len(a.Content), b.Kind, tagOf(b), b.Value, b.Style, len(b.Content))
	}
	if tagOf(a) != "!!null" && (a.Line != b.Line || a.Column != b.Column) {
		return fmt.Errorf("%s %q: fast at %d:%d, yaml.v3 at %d:%d", path, a.Value, a.Line, a.Column, b.Line, b.Column)
	}
	for i := range a.Content {
		if err := sameNodes(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", path, i)); err != nil {
			return err
		}
	}
	return nil
}

func checkFastParse(t *testing.T, data []byte) bool {
	t.Helper()
	fast, _, ok := fastParse(data)
	if !ok {
		return false
	}
	exact, ok := exactDocs(data)
	if !ok {
		t.Fatalf("fastParse accepted what yaml.v3 rejects:\n%s", data)
	}
	if len(fast) != len(exact) {
		t.Fatalf("fastParse: %d documents, yaml.v3 %d:\n%s", len(fast), len(exact), data)
	}
	for i := range fast {
		if err := sameNodes(fast[i], exact[i], fmt.Sprint("doc", i)); err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
	}
	return true
}

// TestFastParseCorpus: on the golden corpus fastParse reads what yaml.v3 reads (or
// declines), and finding targets the fast way gives exactly the exact way's result.
func TestFastParseCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/*.y*ml")
	accepted := 0
	for _, file := range files {
		data, _ := os.ReadFile(file)
		if checkFastParse(t, data) {
			accepted++
		}
		f := testFinder()
		fast := f.scanBytes("x.yaml", data, true)
		exact := f.scanBytes("x.yaml", data, false)
		a, b := describe(unwrap(fast.targets), fast.problems), describe(unwrap(exact.targets), exact.problems)
		if a != b {
			t.Errorf("%s: fast and exact scans differ:\n--- fast\n%s--- exact\n%s", file, a, b)
		}
	}
	if accepted < 10 {
		t.Errorf("fastParse accepted only %d of %d corpus files", accepted, len(files))
	}
	var b bytes.Buffer
	genFileForTest(&b)
	if !checkFastParse(t, b.Bytes()) {
		t.Error("fastParse declines the benchmark manifests")
	}
}

func unwrap(ts []*target) []Target {
	out := make([]Target, len(ts))
	for i, t := range ts {
		out[i] = t.Target
	}
	return out
}

func TestFastParseCases(t *testing.T) {
	for _, src := range []string{
		"a: 1\n", "---\n---\na: 1\n", "a: 1\n---\n", "- a\n- b: c\n  d: [1, {e: f}]\n", "k: 'it''s'\nl: \"\\u00e9\\t\"\n",
		"a:\n- x\n- y\nb: ~\n", "a:\n  b:\n    c: 1\n  d: 2\ne: 3\n", "a: {}\nb: []\n", "x: 1.20\ny: 2024-01-02\nz: 0x1f\nw: +1\n",
		"a: b # c\n# d\nc: 'e' # f\n", "\"q\": 1\n'r': 2\n", "key:\n  value\n", "- - a\n", "a: |\n  x\n", "a: &x 1\n",
		"a: b: c\n", "a:\n  b\n  c\n", " a: 1\n b: 2\n", "a: [1,\n 2]\n", "a: 1\n b: 2\n", "é: ü\n{x: y}: z\n",
		"-1: a\n-: b\n", "a: -\n", "[a, b]\n", "plain\n", "a: \"x\"y\n", "a:\r\n  - b\r\n",
	} {
		checkFastParse(t, []byte(src))
	}
}

// FuzzFastParse: whatever fastParse accepts, yaml.v3 accepts and reads the same.
func FuzzFastParse(f *testing.F) {
	addSeeds(f, func(data []byte) { f.Add(data) })
	for _, s := range []string{"a: 1\n", "- a: [b, {c: d}]\n  e: 'f'\n", "a:\n- b\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastParse(t, data)
	})
}
