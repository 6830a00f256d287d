package update

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// selectTarget picks a target by container name, field path, or "workload-name/container".
func selectTarget(targets []Target, sel string) (Target, bool) {
	for _, t := range targets {
		if t.Container == sel || t.Fields[0].Path == sel || t.Workload.Name+"/"+t.Container == sel {
			return t, true
		}
	}
	return Target{}, false
}

// readDecisions reads "<selector> = <new reference>" lines.
func readDecisions(t *testing.T, path string, targets []Target) []Decision {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ds []Decision
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sel, ref, ok := strings.Cut(line, " = ")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		tg, ok := selectTarget(targets, sel)
		if !ok {
			t.Fatalf("%s: no target %q in %v", path, sel, targets)
		}
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		ds = append(ds, Decision{Target: tg, Image: r})
	}
	return ds
}

// changedLines returns the 1-based numbers of the lines that differ (the files must have
// the same number of lines: edits never add or remove a line break).
func changedLines(t *testing.T, before, after []byte) map[int]bool {
	t.Helper()
	a, b := bytes.Split(before, []byte("\n")), bytes.Split(after, []byte("\n"))
	if len(a) != len(b) {
		t.Fatalf("line count changed: %d -> %d", len(a), len(b))
	}
	out := map[int]bool{}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			out[i+1] = true
		}
	}
	return out
}

// TestEditGolden applies testdata/edit/<case>.decisions to <case>.yaml and compares the
// result with <case>.golden, and checks that only the lines of edited values changed.
func TestEditGolden(t *testing.T) {
	cases, _ := filepath.Glob("testdata/edit/*.decisions")
	if len(cases) == 0 {
		t.Fatal("no test cases")
	}
	for _, dfile := range cases {
		base := strings.TrimSuffix(dfile, ".decisions")
		t.Run(filepath.Base(base), func(t *testing.T) {
			in, err := os.ReadFile(base + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			f := testFinder()
			file := filepath.Base(base) + ".yaml"
			targets, _ := f.FindBytes(file, in)
			ds := readDecisions(t, dfile, targets)
			out, changes, err := f.EditBytes(file, in, ds)
			if err != nil {
				t.Fatal(err)
			}
			if *updateGolden {
				if err := os.WriteFile(base+".golden", out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(base + ".golden")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("edited %s differs from golden:\n--- got\n%s\n--- want\n%s", file, out, want)
			}
			editLines := map[int]bool{}
			for _, c := range changes {
				for _, fc := range c.Fields {
					editLines[fc.Line] = true
				}
			}
			for l := range changedLines(t, in, out) {
				if !editLines[l] {
					t.Errorf("line %d changed but holds no edited value", l)
				}
			}
			// After the edit every decided target reads its new image, and the file has the
			// problems it had before (an unsupported value left alone), no new one.
			_, probsBefore := f.FindBytes(file, in)
			after, probs := f.FindBytes(file, out)
			if got, want := problemStrings(probs), problemStrings(probsBefore); got != want {
				t.Errorf("problems after the edit:\n%s\nbefore:\n%s", got, want)
			}
			for _, c := range changes {
				found := false
				for _, a := range after {
					if a.Line == c.Line && a.Image == c.New {
						found = true
					}
				}
				if !found {
					t.Errorf("after the edit no target at line %d reads %s", c.Line, c.New)
				}
			}
		})
	}
}

func TestEditErrors(t *testing.T) {
	const doc = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  annotations:
    imagebot.dev/automated: "true"
spec:
  template:
    spec:
      containers:
      - name: app
        image: &img nginx:1.16
      - name: side
        image: >-
          nginx:1.16
`
	f := testFinder()
	targets, _ := f.FindBytes("a.yaml", []byte(doc))
	if len(targets) != 2 {
		t.Fatalf("want 2 targets, got %d", len(targets))
	}
	for _, tc := range []struct {
		name string
		d    Decision
		want error
	}{
		{"anchored", Decision{Target: targets[0], Image: name.MustParseReference("nginx:1.17")}, ErrUnsupported},
		{"block scalar", Decision{Target: targets[1], Image: name.MustParseReference("nginx:1.17")}, ErrUnsupported},
		{"stale", Decision{Target: func() Target { x := targets[0]; x.Image = "nginx:1.15"; return x }(), Image: name.MustParseReference("nginx:1.17")}, ErrStale},
		{"gone", Decision{Target: func() Target { x := targets[0]; x.Fields = []Field{{Path: "nope"}}; return x }(), Image: name.MustParseReference("nginx:1.17")}, ErrTargetNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.EditBytes("a.yaml", []byte(doc), []Decision{tc.d})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var ee *EditError
			if !errors.As(err, &ee) || ee.File != "a.yaml" || ee.Line == 0 {
				t.Errorf("error %v does not name file and line", err)
			}
		})
	}
}

// TestEditCannotExpress: a tag-only field cannot take a new repository, and a tag field
// cannot be emptied.
func TestEditCannotExpress(t *testing.T) {
	doc := []byte("images:\n- name: app\n  newTag: 1.0.0 # {\"$imagebot\": \"semver:^1\"}\n")
	f := testFinder()
	targets, probs := f.FindBytes("k.yaml", doc)
	if len(targets) != 1 || len(probs) != 0 {
		t.Fatalf("%v %v", targets, probs)
	}
	for _, ref := range []string{"other/app:1.1.0", "app@sha256:" + strings.Repeat("a", 64)} {
		_, _, err := f.EditBytes("k.yaml", doc, []Decision{{Target: targets[0], Image: mustRef(t, ref)}})
		if !errors.Is(err, ErrCannotExpress) {
			t.Errorf("%s: got %v, want ErrCannotExpress", ref, err)
		}
	}
	// The same repository spelled canonically is fine.
	out, _, err := f.EditBytes("k.yaml", doc, []Decision{{Target: targets[0], Image: name.MustParseReference("index.docker.io/library/app:1.1.0")}})
	if err != nil || !bytes.Contains(out, []byte("newTag: 1.1.0 #")) {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestLineDiff(t *testing.T) {
	got := LineDiff("a.yaml", []byte("x: 1\nimage: app:1 # c\ny: 2\n"), []byte("x: 1\nimage: app:2 # c\ny: 2\n"))
	want := "--- a/a.yaml\n+++ b/a.yaml\n@@ -2 +2 @@\n-image: app:1 # c\n+image: app:2 # c\n"
	if got != want {
		t.Errorf("LineDiff:\n%s\nwant:\n%s", got, want)
	}
}

func TestTagOf(t *testing.T) {
	for ref, want := range map[string]string{
		"nginx:1.16": "1.16", "127.0.0.1:5000/team/app": "", "r.example.com/a:v1@sha256:abc": "v1",
		"r.example.com/a@sha256:abc": "", "localhost:5000/a:2": "2",
	} {
		if got := TagOf(ref); got != want {
			t.Errorf("TagOf(%q) = %q, want %q", ref, got, want)
		}
	}
}

func problemStrings(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.Error() + "\n")
	}
	return b.String()
}
