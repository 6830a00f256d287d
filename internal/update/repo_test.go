package update

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// writeTree creates files (slash-separated names) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readTree(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = string(b)
	}
	return out
}

func deployment(name, image string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  annotations:
    imagebot.dev/automated: "true"
spec:
  template:
    spec:
      containers:
      - name: app
        image: ` + image + `
`
}

func TestFindRepository(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	writeTree(t, root, map[string]string{
		"apps/a.yaml":                  deployment("a", "nginx:1.16"),
		"apps/b.yml":                   deployment("b", "nginx:1.16"),
		"apps/notes.txt":               deployment("txt", "nginx:1.16"),
		"apps/broken.yaml":             "image: [\n",
		".git/config.yaml":             deployment("git", "nginx:1.16"),
		"charts/web/Chart.yaml":        "name: web\n",
		"charts/web/values.yaml":       "image: ghcr.io/org/web:1.0.0 # {\"$imagebot\": \"semver:^1\"}\n",
		"charts/web/templates/d.yaml":  "image: {{ .Values.image }}\n",
		"big/huge.yaml":                deployment("huge", "nginx:1.16") + strings.Repeat("# padding\n", 200),
		"other/ignored-by-paths.yaml":  deployment("other", "nginx:1.16"),
		"apps/nested/deeper/c.yaml":    deployment("c", "ghcr.io/org/c:1.0.0"),
		"apps/nested/deeper/noimg.yml": "kind: ConfigMap\n",
	})
	writeTree(t, outside, map[string]string{"evil.yaml": deployment("evil", "nginx:1.16")})
	if err := os.Symlink(filepath.Join(outside, "evil.yaml"), filepath.Join(root, "apps", "evil.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "apps", "a.yaml"), filepath.Join(root, "apps", "alias.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "apps", "outside-dir")); err != nil {
		t.Fatal(err)
	}
	f := &Finder{Paths: []string{"apps", "charts", "big"}, MaxFileSize: 1000, ValidatePolicy: testValidatePolicy}
	res, err := f.Find(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range res.Targets {
		got = append(got, tg.File+" "+tg.Image)
	}
	want := []string{
		"apps/a.yaml nginx:1.16",
		"apps/b.yml nginx:1.16",
		"apps/nested/deeper/c.yaml ghcr.io/org/c:1.0.0",
		"charts/web/values.yaml ghcr.io/org/web:1.0.0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("targets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantProblems := map[string]error{
		"apps/broken.yaml": ErrMalformed,
		"apps/evil.yaml":   ErrSymlink,
		"apps/outside-dir": ErrSymlink,
		"big/huge.yaml":    ErrTooLarge,
	}
	for _, p := range res.Problems {
		w, ok := wantProblems[p.File]
		if !ok || !errors.Is(p, w) {
			t.Errorf("unexpected problem %v", p)
		}
		delete(wantProblems, p.File)
	}
	for f, e := range wantProblems {
		t.Errorf("missing problem %s: %v", f, e)
	}
	// A configured path that leaves the repository is refused.
	bad := &Finder{Paths: []string{"../" + filepath.Base(outside)}}
	if _, err := bad.Find(context.Background(), root); err == nil {
		t.Error("a path outside the repository was walked")
	}
	// The second run uses the cache and finds the same.
	res2, err := f.Find(context.Background(), root)
	if err != nil || len(res2.Targets) != len(res.Targets) {
		t.Fatalf("second run: %v, %d targets", err, len(res2.Targets))
	}
}

func TestApplyRepository(t *testing.T) {
	root := t.TempDir()
	seed, _ := os.ReadFile("testdata/edit/seed-fluxdemo.yaml")
	writeTree(t, root, map[string]string{
		"apps/flask.yaml": string(seed),
		"apps/web.yaml":   deployment("web", "ghcr.io/org/web:1.0.0"),
	})
	if err := os.Chmod(filepath.Join(root, "apps/web.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := testFinder()
	ctx := context.Background()
	res, err := f.Find(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	var ds []Decision
	for _, tg := range res.Targets {
		switch tg.Container {
		case "flask":
			ds = append(ds, Decision{Target: tg, Image: name.MustParseReference("registry.example.com/team/flaskapp:develop-v1.8.1")})
		case "app":
			ds = append(ds, Decision{Target: tg, Image: name.MustParseReference("ghcr.io/org/web:1.1.0")})
		}
	}
	cs, err := f.Apply(ctx, root, ds)
	if err != nil {
		t.Fatal(err)
	}
	if got := cs.Files(); strings.Join(got, ",") != "apps/flask.yaml,apps/web.yaml" {
		t.Errorf("files %v", got)
	}
	msg := cs.Message()
	if !strings.HasPrefix(msg, "Update 2 images\n\n") || !strings.Contains(msg, "develop-v1.8.0 -> registry.example.com/team/flaskapp:develop-v1.8.1") {
		t.Errorf("message:\n%s", msg)
	}
	after := readTree(t, root, "apps/flask.yaml")["apps/flask.yaml"]
	if want := strings.Replace(string(seed), "develop-v1.8.0", "develop-v1.8.1", 1); after != want {
		t.Errorf("flask.yaml is not the one-value diff:\n%s", after)
	}
	if info, _ := os.Stat(filepath.Join(root, "apps/web.yaml")); info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", info.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(root, "apps", ".*imagebot*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
	// The same decisions again: the targets are stale now.
	if _, err := f.Apply(ctx, root, ds); !errors.Is(err, ErrStale) {
		t.Errorf("re-applying old decisions: %v, want ErrStale", err)
	}
	// Nothing to do: an empty change set and no write.
	res, _ = f.Find(ctx, root)
	var same []Decision
	for _, tg := range res.Targets {
		same = append(same, Decision{Target: tg, Image: mustRef(t, tg.Image)})
	}
	cs, err = f.Apply(ctx, root, same)
	if err != nil || !cs.Empty() {
		t.Errorf("no-op apply: %v, %v", cs, err)
	}
}

// TestApplyAllOrNothing: one bad decision (or a failing write) leaves every file as it was.
func TestApplyAllOrNothing(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"a.yaml": deployment("a", "ghcr.io/org/a:1.0.0"),
		"b.yaml": deployment("b", "&anchor ghcr.io/org/b:1.0.0"),
		"c.yaml": deployment("c", "ghcr.io/org/c:1.0.0"),
	})
	before := readTree(t, root, "a.yaml", "b.yaml", "c.yaml")
	f := testFinder()
	ctx := context.Background()
	res, err := f.Find(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	var ds []Decision
	for _, tg := range res.Targets {
		ds = append(ds, Decision{Target: tg, Image: mustRef(t, strings.Replace(tg.Image, "1.0.0", "2.0.0", 1))})
	}
	if _, err := f.Apply(ctx, root, ds); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "b.yaml:12") {
		t.Fatalf("got %v, want ErrUnsupported naming b.yaml:12", err)
	}
	if after := readTree(t, root, "a.yaml", "b.yaml", "c.yaml"); !equalMaps(before, after) {
		t.Error("a failed run changed files")
	}
}

func TestWriteAllRollback(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	os.WriteFile(a, []byte("old a\n"), 0o644)
	pending := []pendingWrite{
		{file: "a.yaml", path: a, old: []byte("old a\n"), new: []byte("new a\n"), mode: 0o644},
		{file: "missing/b.yaml", path: filepath.Join(dir, "missing", "b.yaml"), old: nil, new: []byte("x"), mode: 0o644},
	}
	err := writeAll(context.Background(), pending)
	if err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if b, _ := os.ReadFile(a); !bytes.Equal(b, []byte("old a\n")) {
		t.Errorf("a.yaml not restored: %q", b)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestWriteAllRenameFails: when a rename fails half way, the files already renamed get
// their old content back and no temp file is left.
func TestWriteAllRenameFails(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	os.WriteFile(a, []byte("old a\n"), 0o644)
	b := filepath.Join(dir, "b.yaml")
	os.MkdirAll(filepath.Join(b, "x"), 0o755) // a directory: renaming a file onto it fails
	err := writeAll(context.Background(), []pendingWrite{
		{file: "a.yaml", path: a, old: []byte("old a\n"), new: []byte("new a\n"), mode: 0o644},
		{file: "b.yaml", path: b, new: []byte("x"), mode: 0o644},
	})
	if err == nil {
		t.Fatal("rename onto a directory succeeded")
	}
	if got, _ := os.ReadFile(a); string(got) != "old a\n" {
		t.Errorf("a.yaml not restored: %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*imagebot*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestUnsupportedValueDoesNotBlock: an automated image the editor cannot edit (anchored
// here) is one Problem naming file:line, workload, container and why; its target carries
// EditErr and is left out of automation, so the plain image in the other file is still
// updated and the anchored file is untouched. Asked anyway, Apply refuses it and writes
// nothing.
func TestUnsupportedValueDoesNotBlock(t *testing.T) {
	root := t.TempDir()
	anchored := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: shared
  namespace: team
  annotations:
    imagebot.dev/automated: "true"
spec:
  template:
    spec:
      containers:
      - name: app
        image: &img ghcr.io/org/shared:1.0.0
      - name: sidecar
        image: *img
`
	writeTree(t, root, map[string]string{
		"apps/a.yaml": deployment("plain", "ghcr.io/org/plain:1.0.0"),
		"apps/b.yaml": anchored,
	})
	f := &Finder{ValidatePolicy: testValidatePolicy}
	res, err := f.Find(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 2 {
		t.Fatalf("want 2 problems (app and sidecar of b.yaml), got %v", res.Problems)
	}
	for i, c := range []string{"app", "sidecar"} {
		p := res.Problems[i]
		msg := p.Error()
		if !errors.Is(p, ErrUnsupported) || p.Warning || p.File != "apps/b.yaml" || p.Line != 13 {
			t.Errorf("problem %d: %v (warning %v)", i, msg, p.Warning)
		}
		for _, want := range []string{"apps/b.yaml:13:", "Deployment/team/shared", "container " + c, "anchored or reached through an alias", "not automated"} {
			if !strings.Contains(msg, want) {
				t.Errorf("problem %q does not say %q", msg, want)
			}
		}
	}
	var auto, all []Decision
	for _, tg := range res.Targets {
		next := strings.Replace(tg.Image, "1.0.0", "1.1.0", 1)
		d := Decision{Target: tg, Image: mustRef(t, next)}
		all = append(all, d)
		switch tg.File {
		case "apps/a.yaml":
			if tg.EditErr != nil || !tg.Automated {
				t.Fatalf("plain target not automatable: %v", tg.EditErr)
			}
			auto = append(auto, d)
		case "apps/b.yaml":
			if !errors.Is(tg.EditErr, ErrUnsupported) {
				t.Fatalf("anchored target %s: EditErr %v", tg, tg.EditErr)
			}
		}
	}
	if len(all) != 3 || len(auto) != 1 {
		t.Fatalf("targets %v", res.Targets)
	}
	before := readTree(t, root, "apps/a.yaml", "apps/b.yaml")

	// Apply refuses the unsupported value, naming it, and writes nothing.
	_, err = f.Apply(context.Background(), root, all)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "apps/b.yaml:13") {
		t.Fatalf("Apply of every target: %v", err)
	}
	if got := readTree(t, root, "apps/a.yaml", "apps/b.yaml"); !equalMaps(got, before) {
		t.Fatal("a refused Apply changed files")
	}

	// The automatable decisions go through: the plain file is edited, the anchored one not.
	cs, err := f.Apply(context.Background(), root, auto)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Changes) != 1 || cs.Changes[0].File != "apps/a.yaml" || cs.Changes[0].New != "ghcr.io/org/plain:1.1.0" {
		t.Fatalf("changes %+v", cs.Changes)
	}
	got := readTree(t, root, "apps/a.yaml", "apps/b.yaml")
	if got["apps/b.yaml"] != anchored {
		t.Errorf("anchored file changed:\n%s", got["apps/b.yaml"])
	}
	if want := deployment("plain", "ghcr.io/org/plain:1.1.0"); got["apps/a.yaml"] != want {
		t.Errorf("plain file:\n%s\nwant:\n%s", got["apps/a.yaml"], want)
	}
}

// TestFindReportsBadFiles: a malformed file that may hold a target (it mentions "image" or
// "fluxcd.io/") is a Problem naming the file and the line, even when yaml.v3's message has
// no line; one that mentions neither is skipped unparsed (it cannot hold a target); a file
// over MaxFileSize is a warning naming the file, its size and the limit.
func TestFindReportsBadFiles(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"indent.yaml":  "kind: Deployment\nspec:\n  image: nginx\n   bad: indent\n",
		"mapping.yaml": "metadata:\n  annotations:\n    repository.fluxcd.io/app: a\n    tag.fluxcd.io/app: b: c\n",
		"control.yaml": "kind: Pod\nspec:\n  containers:\n  - image: ngi\x07nx\n",
		"anchor.yaml":  "a: 1\nb:\n  image: *missing\n",
		"other.yaml":   "kind: ConfigMap\ndata: [unclosed\n",
		"huge.yaml":    "# image\n" + strings.Repeat("x: 1\n", 300),
	})
	f := &Finder{MaxFileSize: 1000}
	res, err := f.Find(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"anchor.yaml":  "anchor.yaml:3: malformed YAML: yaml: unknown anchor 'missing' referenced",
		"control.yaml": "control.yaml:4: malformed YAML: yaml: control characters are not allowed",
		"huge.yaml":    "huge.yaml: file too large: 1508 bytes, the limit is 1000",
		"indent.yaml":  "indent.yaml:4: malformed YAML: yaml: line 4: mapping values are not allowed in this context",
		"mapping.yaml": "mapping.yaml:4: malformed YAML: yaml: line 4: mapping values are not allowed in this context",
	}
	for _, p := range res.Problems {
		w, ok := want[p.File]
		if !ok {
			t.Errorf("unexpected problem %v", p)
			continue
		}
		delete(want, p.File)
		if p.Error() != w {
			t.Errorf("problem %q, want %q", p.Error(), w)
		}
		if wantWarning := p.File == "huge.yaml"; p.Warning != wantWarning {
			t.Errorf("%s: warning=%v", p.File, p.Warning)
		}
		if p.File == "huge.yaml" && !errors.Is(p, ErrTooLarge) || p.File != "huge.yaml" && !errors.Is(p, ErrMalformed) {
			t.Errorf("%s: wrong sentinel: %v", p.File, p)
		}
	}
	for file, w := range want {
		t.Errorf("no problem for %s (want %q)", file, w)
	}
}
