package sync_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ksync "imagebot.dev/imagebot/internal/sync"
)

const cmDoc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n"

func cm(name string) string { return strings.Replace(cmDoc, "%s", name, 1) }

func refsOf(t *testing.T, dir string, paths []string) []string {
	t.Helper()
	objs, err := ksync.Read(dir, paths)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, ksync.RefOf(o).String())
	}
	return out
}

func TestRead(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		paths []string
		want  []string
	}{{
		name: "recursive, lexical order, hidden and non-YAML files skipped",
		files: map[string]string{
			"b/z.yaml": cm("bz"), "a.yml": cm("a"), "b/a.json": `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ba"}}`,
			".hidden/x.yaml": cm("hidden"), "README.md": "# not a manifest", "b/.h.yaml": cm("hidden2"),
		},
		want: []string{"ConfigMap/a", "ConfigMap/ba", "ConfigMap/bz"},
	}, {
		name:  "multi-document with comments, empty documents and a List",
		files: map[string]string{"m.yaml": "# header\n---\n" + cm("one") + "---\n---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(cm("two"), "\n", "\n  ")},
		want:  []string{"ConfigMap/one", "ConfigMap/two"},
	}, {
		name:  "paths choose and order what is read",
		files: map[string]string{"apps/x.yaml": cm("xx"), "infra/y.yaml": cm("yy"), "other/z.yaml": cm("zz")},
		paths: []string{"infra", "apps/x.yaml"},
		want:  []string{"ConfigMap/yy", "ConfigMap/xx"},
	}, {
		name: "a kustomization is built, its files are not read raw",
		files: map[string]string{
			"plain.yaml":                 cm("plain"),
			"overlay/kustomization.yaml": "namePrefix: prod-\nnamespace: prod\nresources:\n- cm.yaml\npatches:\n- path: patch.yaml\n",
			"overlay/cm.yaml":            cm("app") + "data: {level: debug}\n",
			"overlay/patch.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {level: info}\n",
			"overlay/sub/not-read.yaml":  cm("not-read"),
		},
		want: []string{"ConfigMap/prod/prod-app", "ConfigMap/plain"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			got := refsOf(t, dir, tt.paths)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadKustomizePatchApplied(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"kustomization.yaml": "resources:\n- cm.yaml\npatches:\n- path: patch.yaml\n",
		"cm.yaml":            cm("app") + "data: {level: debug, n: \"1\"}\n",
		"patch.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {level: info}\n",
	})
	objs, err := ksync.Read(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || nestedString(objs[0], "data", "level") != "info" || nestedString(objs[0], "data", "n") != "1" {
		t.Fatalf("got %v", objs)
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{"broken YAML names the file and line", map[string]string{"ok.yaml": cm("a"), "bad.yaml": cm("b") + "---\n" + "kind: [\n"}, []string{"bad.yaml", "line 6"}},
		{"missing name", map[string]string{"x.yaml": "apiVersion: v1\nkind: ConfigMap\n"}, []string{"x.yaml", "missing metadata.name"}},
		{"missing apiVersion", map[string]string{"x.yaml": "kind: ConfigMap\nmetadata: {name: a}\n"}, []string{"x.yaml", "missing apiVersion"}},
		{"generateName", map[string]string{"x.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: a-}\n"}, []string{"generateName is not supported"}},
		{"declared twice", map[string]string{"a.yaml": cm("dup"), "b/c.yaml": cm("dup")}, []string{"ConfigMap/dup is declared twice", "a.yaml", "b/c.yaml"}},
		{"kustomize error", map[string]string{"kustomization.yaml": "resources:\n- missing.yaml\n"}, []string{"kustomize build ."}},
		{"kustomize reaching outside the checkout", map[string]string{"k/kustomization.yaml": "resources:\n- ../../outside\n"}, []string{"kustomize build k"}},
		{"a remote base is not fetched", map[string]string{"kustomization.yaml": "resources:\n- github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1\n"}, []string{"kustomize build .", "is remote"}},
		{"a remote URL is not fetched", map[string]string{"kustomization.yaml": "resources:\n- https://example.com/app.yaml\n"}, []string{"is remote"}},
		{"a remote base in an included overlay", map[string]string{"kustomization.yaml": "resources:\n- base\n", "base/kustomization.yaml": "resources:\n- git@github.com:org/repo.git\n"}, []string{"is remote"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			_, err := ksync.Read(dir, nil)
			if !errors.Is(err, ksync.ErrRender) {
				t.Fatalf("want ErrRender, got %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestReadRefusesSymlinksOutOfTheCheckout(t *testing.T) {
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.yaml": cm("stolen")})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": cm("a")})
	if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := ksync.Read(dir, nil); err == nil || !strings.Contains(err.Error(), "outside the checkout") {
		t.Fatalf("want an error about leaving the checkout, got %v", err)
	}
	if _, err := ksync.Read(dir, []string{"../" + filepath.Base(outside)}); err == nil {
		t.Fatal("a path out of the checkout was read")
	}
}

// TestRenderNamespaces asks the cluster which kinds are namespaced.
func TestRenderNamespaces(t *testing.T) {
	c := cluster(t)
	m := newManager(t, c.Config)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": cm("no-ns") + "---\n" + cm("has-ns") + "  namespace: other\n---\n" +
		"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r, namespace: wrong}\nrules: []\n"})
	objs, err := m.Render(ctxFor(t, 30*time.Second), dir, nil, "apps")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, ksync.RefOf(o).String())
	}
	want := "ConfigMap/apps/no-ns ConfigMap/other/has-ns ClusterRole/r"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
}
