package update

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readEdit reads an annotation edit: "workload Kind/ns/name", "automated true|false",
// "locked true|false", "locked_msg …", "locked_user …", "tag <container> [policy]".
func readEdit(t *testing.T, path string) AnnotationEdit {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var e AnnotationEdit
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		verb, rest, _ := strings.Cut(sc.Text(), " ")
		switch verb {
		case "workload":
			parts := strings.Split(rest, "/")
			e.Workload = Workload{Kind: parts[0], Namespace: parts[1], Name: parts[2]}
		case "automated":
			b := rest == "true"
			e.Automated = &b
		case "locked":
			b := rest == "true"
			e.Locked = &b
		case "locked_msg":
			e.LockedMsg = rest
		case "locked_user":
			e.LockedUser = rest
		case "tag":
			c, p, _ := strings.Cut(rest, " ")
			if e.Tags == nil {
				e.Tags = map[string]string{}
			}
			e.Tags[c] = p
		case "":
		default:
			t.Fatalf("%s: unknown line %q", path, sc.Text())
		}
	}
	return e
}

// TestAnnotateGolden applies testdata/annotate/<case>.edit to <case>.yaml and compares
// with <case>.golden; the targets found afterwards must reflect the edit.
func TestAnnotateGolden(t *testing.T) {
	cases, _ := filepath.Glob("testdata/annotate/*.edit")
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, efile := range cases {
		base := strings.TrimSuffix(efile, ".edit")
		t.Run(filepath.Base(base), func(t *testing.T) {
			in, err := os.ReadFile(base + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			edit := readEdit(t, efile)
			f := testFinder()
			out, changes, err := f.AnnotateBytes("x.yaml", in, edit)
			if err != nil {
				t.Fatal(err)
			}
			if len(changes) == 0 {
				t.Error("no changes reported")
			}
			if *updateGolden {
				os.WriteFile(base+".golden", out, 0o644)
			}
			want, err := os.ReadFile(base + ".golden")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("got\n%s\nwant\n%s", out, want)
			}
			// Applying the same edit again changes nothing.
			again, changes2, err := f.AnnotateBytes("x.yaml", out, edit)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, out) || len(changes2) != 0 {
				t.Errorf("edit is not idempotent: %v", changes2)
			}
			targets, probs := f.FindBytes("x.yaml", out)
			for _, p := range probs {
				if !p.Warning {
					t.Errorf("problem after edit: %v", p)
				}
			}
			for _, tg := range targets {
				if tg.Workload != edit.Workload {
					continue
				}
				if edit.Automated != nil && tg.Automated != *edit.Automated {
					t.Errorf("%s: automated=%v after the edit", tg.Container, tg.Automated)
				}
				if edit.Locked != nil && tg.Locked != *edit.Locked {
					t.Errorf("%s: locked=%v after the edit", tg.Container, tg.Locked)
				}
				if p, ok := edit.Tags[tg.Container]; ok && p != "" && tg.Policy != p {
					t.Errorf("%s: policy %q after the edit, want %q", tg.Container, tg.Policy, p)
				}
			}
		})
	}
}

func TestAnnotateErrors(t *testing.T) {
	const doc = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  annotations: {imagebot.dev/automated: "true"}
spec:
  template:
    spec:
      containers:
      - name: app
        image: nginx:1.16
`
	yes := true
	for _, tc := range []struct {
		name string
		edit AnnotationEdit
		want error
	}{
		{"not found", AnnotationEdit{Workload: Workload{Kind: "Deployment", Name: "nope"}, Automated: &yes}, ErrWorkloadNotFound},
		{"unknown container", AnnotationEdit{Workload: Workload{Kind: "Deployment", Name: "app"}, Tags: map[string]string{"ghost": "glob:*"}}, ErrUnknownContainer},
		{"invalid policy", AnnotationEdit{Workload: Workload{Kind: "Deployment", Name: "app"}, Tags: map[string]string{"app": "whatever"}}, ErrInvalidPolicy},
		{"flow insert", AnnotationEdit{Workload: Workload{Kind: "Deployment", Name: "app"}, Locked: &yes}, ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := testFinder().AnnotateBytes("a.yaml", []byte(doc), tc.edit)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Setting what is already set (in the flow map) is a no-op, not an error.
	out, changes, err := testFinder().AnnotateBytes("a.yaml", []byte(doc), AnnotationEdit{Workload: Workload{Kind: "Deployment", Name: "app"}, Automated: &yes})
	if err != nil || len(changes) != 0 || string(out) != doc {
		t.Fatalf("no-op edit: %v %v", changes, err)
	}
}
