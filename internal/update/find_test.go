package update

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// testFinder is the Finder the golden tests use: a few marker policies and a policy check
// that rejects specs without a known prefix.
func testFinder() *Finder {
	return &Finder{
		Markers: map[string]MarkerPolicy{
			"flux-system:podinfo":  {Policy: "semver:>=6.0.0"},
			"flux-system:app":      {Policy: "semver:~1.2"},
			"flux-system:redis":    {Policy: "semver:7.x", Image: "docker.io/library/redis"},
			"flux-system:frontend": {Policy: "glob:main-*"},
		},
		ValidatePolicy: testValidatePolicy,
	}
}

func testValidatePolicy(spec string) error {
	for _, p := range []string{"glob:", "semver:", "regex:"} {
		if strings.HasPrefix(spec, p) && len(spec) > len(p) {
			return nil
		}
	}
	return errors.New("want glob:, semver: or regex:")
}

// describe renders targets and problems as the golden text.
func describe(targets []Target, problems []Problem) string {
	var b strings.Builder
	for _, t := range targets {
		fmt.Fprintf(&b, "target %s line %d doc %d\n", t.Source, t.Line, t.Doc)
		if w := t.Workload.String(); w != "" {
			fmt.Fprintf(&b, "  workload  %s\n", w)
		}
		if t.Container != "" {
			fmt.Fprintf(&b, "  container %s\n", t.Container)
		}
		fmt.Fprintf(&b, "  image     %s\n", t.Image)
		if t.Policy != "" {
			fmt.Fprintf(&b, "  policy    %s (from %s)\n", t.Policy, t.PolicySource)
		}
		if t.PolicyErr != nil {
			fmt.Fprintf(&b, "  policyErr %v\n", t.PolicyErr)
		}
		if t.EditErr != nil {
			fmt.Fprintf(&b, "  editErr   %v\n", t.EditErr)
		}
		fmt.Fprintf(&b, "  state     automated=%v locked=%v ignored=%v", t.Automated, t.Locked, t.Ignored)
		if t.LockedMsg != "" || t.LockedUser != "" {
			fmt.Fprintf(&b, " msg=%q user=%q", t.LockedMsg, t.LockedUser)
		}
		b.WriteString("\n")
		for _, f := range t.Fields {
			td := ""
			if f.TagDigest {
				td = " (tag@digest)"
			}
			fmt.Fprintf(&b, "  field     %s %s at %d:%d = %q%s\n", f.Part, f.Path, f.Line, f.Column, f.Value, td)
		}
	}
	for _, p := range problems {
		kind := "problem"
		if p.Warning {
			kind = "warning"
		}
		fmt.Fprintf(&b, "%s %s\n", kind, p.Error())
	}
	return b.String()
}

// TestFindGolden scans every testdata/find/*.yaml (and .yml) and compares what it finds
// with the .golden file beside it.
func TestFindGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/find/*.y*ml")
	edits, _ := filepath.Glob("testdata/edit/*.yaml")
	files = append(files, edits...)
	if len(files) == 0 {
		t.Fatal("no test files")
	}
	for _, file := range files {
		t.Run(filepath.Base(filepath.Dir(file))+"/"+filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			targets, problems := testFinder().FindBytes(filepath.Base(file), data)
			got := describe(targets, problems)
			golden := strings.TrimSuffix(file, filepath.Ext(file)) + ".targets"
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("targets of %s differ from %s:\n--- got\n%s--- want\n%s", file, golden, got, want)
			}
		})
	}
}

// TestDefaultPolicyValidation: without ValidatePolicy, specs go through policy.Parse.
func TestDefaultPolicyValidation(t *testing.T) {
	doc := []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  annotations:
    imagebot.dev/automated: "true"
    imagebot.dev/tag.good: semver:~1.2
    imagebot.dev/tag.bad: semver:not a constraint
spec:
  template:
    spec:
      containers:
      - {name: good, image: ghcr.io/org/good:1.2.0}
      - {name: bad, image: ghcr.io/org/bad:1.2.0}
`)
	targets, problems := (&Finder{}).FindBytes("app.yaml", doc)
	if len(targets) != 2 || targets[0].PolicyErr != nil || targets[1].PolicyErr == nil {
		t.Fatalf("targets %+v", targets)
	}
	if len(problems) != 1 || !errors.Is(problems[0], ErrInvalidPolicy) || problems[0].Line != 8 {
		t.Fatalf("problems %v", problems)
	}
}

func TestPullSecretsAndServiceAccount(t *testing.T) {
	var f Finder
	targets, problems := f.FindBytes("d.yaml", []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: team}
spec:
  template:
    spec:
      serviceAccountName: builder
      imagePullSecrets:
      - name: regcred
      - name: other
      containers:
      - name: app
        image: registry.example.com/app:1
`))
	if len(problems) != 0 || len(targets) != 1 {
		t.Fatalf("targets %v, problems %v", targets, problems)
	}
	if got := targets[0]; strings.Join(got.PullSecrets, ",") != "regcred,other" || got.ServiceAccount != "builder" {
		t.Errorf("pull secrets %v, service account %q", got.PullSecrets, got.ServiceAccount)
	}
}
