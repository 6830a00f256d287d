package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLayering keeps the packages' dependencies in their lanes (DESIGN.md): policy and
// update are pure (no cluster, no git, no network), scan leaves client-go and the cloud
// SDKs to the daemon and scan/cloudauth, repoconfig (the daemon's and the CLI's) needs no
// cluster.
func TestLayering(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go command to list dependencies with: this test needs the Go toolchain")
	}
	cluster := []string{"k8s.io/client-go", "k8s.io/apimachinery", "sigs.k8s.io/cli-utils"}
	for _, tc := range []struct {
		pkg       string
		forbidden []string
		// directOnly, when set, is the complete list of what pkg may import itself.
		directOnly []string
	}{
		{pkg: "policy", forbidden: append([]string{"github.com/go-git/", "github.com/google/go-containerregistry", "net/http", "os/exec"}, cluster...),
			directOnly: []string{"errors", "fmt", "regexp", "strconv", "strings", "time", "github.com/Masterminds/semver/v3"}},
		{pkg: "update", forbidden: append([]string{"github.com/go-git/"}, cluster...)},
		{pkg: "scan", forbidden: append([]string{"github.com/go-git/", "github.com/aws/", "github.com/Azure/",
			"github.com/awslabs/", "github.com/chrismellard/", "cloud.google.com/"}, cluster...)},
		// repoconfig is shared by the daemon and the CLI's commands on a checkout, which
		// must work without a cluster.
		{pkg: "repoconfig", forbidden: cluster},
	} {
		pkg := "imagebot.dev/imagebot/internal/" + tc.pkg
		out, err := exec.Command(goBin, "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, pkg) {
			t.Fatalf("go list -deps %s did not list the package itself: %q", pkg, deps)
		}
		for _, d := range deps {
			for _, bad := range tc.forbidden {
				if strings.HasPrefix(d, bad) {
					t.Errorf("%s depends on %s", tc.pkg, d)
				}
			}
		}
		if tc.directOnly == nil {
			continue
		}
		out, err = exec.Command(goBin, "list", "-f", `{{join .Imports "\n"}}`, pkg).Output()
		if err != nil {
			t.Fatalf("go list -f %s: %v", pkg, err)
		}
		for _, imp := range strings.Fields(string(out)) {
			if !slices.Contains(tc.directOnly, imp) {
				t.Errorf("%s imports %s; allowed: %v", tc.pkg, imp, tc.directOnly)
			}
		}
	}
}
