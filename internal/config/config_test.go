package config

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateSchema = flag.Bool("update-schema", false, "rewrite config/schema/repository.schema.json")

const schemaFile = "../../config/schema/repository.schema.json"

func TestExampleLoads(t *testing.T) {
	repos, err := Load("../../config/examples")
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 {
		t.Fatalf("%d repositories", len(repos))
	}
	r := repos[0]
	if r.Metadata.Name != "demo" || r.Spec.Git.Branch != "main" || r.Spec.Git.Interval.Duration != time.Minute ||
		r.Spec.Scan.Interval.Or(0) != 5*time.Minute || !*r.Spec.Sync.Prune || r.Spec.Sync.MaxPruneFraction != 0.5 ||
		r.Spec.Markers["flux-system:flask"].Policy != "semver:~1.8" || r.Spec.Registries[0].Burst != 20 {
		t.Errorf("unexpected values: %+v", r)
	}
}

const minimal = `apiVersion: imagebot.dev/v1alpha1
kind: Repository
metadata:
  name: x
spec:
  git:
    url: https://git.example.com/x.git
`

func TestErrorsNameFileLineAndField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", strings.Replace(minimal, "    url:", "    branchh: main\n    url:", 1), `x.yaml: invalid config: line 7: unknown field "branchh" in spec.git`},
		{"unknown top field", minimal + "extra: 1\n", `line 8: unknown field "extra" in the top level`},
		{"bad duration", minimal + "    interval: 5 minutes\n", `line 8: "5 minutes" is not a duration`},
		{"wrong type", minimal + "    depth: deep\n", `line 8: cannot unmarshal !!str`},
		{"missing url", strings.Replace(minimal, "    url: https://git.example.com/x.git\n", "    branch: main\n", 1), `x.yaml:6: invalid config: spec.git.url: is required`},
		{"ssh without known_hosts", strings.Replace(minimal, "https://", "ssh://", 1) + "    auth:\n      sshKeyFile: /k\n", `x.yaml:8: invalid config: spec.git.auth.knownHostsFile: is required`},
		{"bad policy", minimal + "  markers:\n    ns:app:\n      image: r.example.com/app\n      policy: regex:(\n", `x.yaml:11: invalid config: spec.markers.ns:app.policy: `},
		{"empty glob", minimal + "  images:\n    include: ['']\n", `x.yaml:9: invalid config: spec.images.include[0]: is empty`},
		{"bad name", strings.Replace(minimal, "name: x", "name: Not_A_Name", 1), `x.yaml:4: invalid config: metadata.name`},
		{"path escapes", minimal + "    paths: [../other]\n", `x.yaml:8: invalid config: spec.git.paths[0]: "../other" leaves the repository`},
		{"bad template", minimal + "    commit:\n      messageTemplate: '{{ .Nope'\n", `x.yaml:9: invalid config: spec.git.commit.messageTemplate`},
		{"bad prune share", minimal + "  sync:\n    maxPruneFraction: 2\n", `spec.sync.maxPruneFraction: 2 is not between 0 and 1`},
		{"prune kind not protected", minimal + "  sync:\n    pruneKinds: [Namespace, Deployment]\n", `spec.sync.pruneKinds[1]: "Deployment" is not one of Namespace, PersistentVolumeClaim, CustomResourceDefinition`},
		{"wrong kind", strings.Replace(minimal, "kind: Repository", "kind: Repo", 1), `x.yaml:2: invalid config: kind: is "Repo"`},
		{"malformed yaml", minimal + "  : [\n", `x.yaml: invalid config: yaml:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.yaml))
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadDirectoryAndDuplicates(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(minimal), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte(strings.Replace(minimal, "name: x", "name: y", 1)+"---\n"+strings.Replace(minimal, "name: x", "name: z", 1)), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not yaml"), 0o644)
	repos, err := Load(dir)
	if err != nil || len(repos) != 3 {
		t.Fatalf("%d repos, %v", len(repos), err)
	}
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(minimal), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), `repository name "x" is also used in`) {
		t.Errorf("duplicate names: %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("an empty directory loaded")
	}
}

// TestSchemaIsCurrent keeps config/schema/repository.schema.json generated from the types;
// run `go test ./internal/config -run Schema -update-schema` after changing them.
func TestSchemaIsCurrent(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	if *updateSchema {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is out of date: run go test ./internal/config -run Schema -update-schema", schemaFile)
	}
	for _, field := range []string{`"sshKeyFile"`, `"maxPruneFraction"`, `"const": "imagebot.dev/v1alpha1"`, `"additionalProperties": false`} {
		if !strings.Contains(string(got), field) {
			t.Errorf("schema lacks %s", field)
		}
	}
}

func TestMatchImage(t *testing.T) {
	for _, tc := range []struct {
		glob, repo string
		want       bool
	}{
		{"127.0.0.1:*", "127.0.0.1:5000/team/app", true},
		{"*/team/*", "registry.example.com/team/app", true},
		{"docker.io/library/*", "index.docker.io/library/nginx", true}, // as written, as parsed
		{"index.docker.io/library/*", "index.docker.io/library/nginx", true},
		{"docker.io/*", "mirror.example.com/docker.io/nginx", false},
		{"registry.example.com/team/ap?", "registry.example.com/team/app", true},
		{"registry.example.com/team/ap?", "registry.example.com/team/apps", false},
		{"", "x", false},
	} {
		if got := MatchImage(tc.glob, tc.repo); got != tc.want {
			t.Errorf("MatchImage(%q, %q) = %v", tc.glob, tc.repo, got)
		}
	}
}

// TestSchemaDocumentsEveryField: every field of the config has a description in the schema
// (fieldDoc), and fieldDoc and fieldDefault name no field that does not exist.
func TestSchemaDocumentsEveryField(t *testing.T) {
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var walk func(node map[string]any, path string)
	walk = func(node map[string]any, path string) {
		if props, ok := node["properties"].(map[string]any); ok {
			for name, v := range props {
				p := name
				if path != "" {
					p = path + "." + name
				}
				seen[p] = true
				child := v.(map[string]any)
				if d, _ := child["description"].(string); d == "" {
					t.Errorf("%s has no description: add it to fieldDoc", p)
				}
				walk(child, p)
			}
		}
		if items, ok := node["items"].(map[string]any); ok {
			walk(items, path+"[]")
		}
		if values, ok := node["additionalProperties"].(map[string]any); ok {
			walk(values, path+".*")
		}
	}
	walk(root, "")
	for p := range fieldDoc {
		if !seen[p] {
			t.Errorf("fieldDoc names %s, which is not a field", p)
		}
	}
	for p := range fieldDefault {
		if !seen[p] {
			t.Errorf("fieldDefault names %s, which is not a field", p)
		}
	}
}
