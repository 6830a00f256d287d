package policy

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The policy package is pure: it must not reach client-go, go-git or any
// I/O package, directly or through a dependency.
func TestNoForbiddenDependencies(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatal("no go command to list dependencies with: this test needs the Go toolchain")
		}
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "imagebot.dev/imagebot/internal/policy") {
		t.Fatalf("go list -deps did not list the package itself: %q", deps)
	}
	for _, d := range deps {
		for _, bad := range []string{"k8s.io/", "sigs.k8s.io/", "github.com/go-git/", "github.com/google/go-containerregistry", "net/http", "os/exec"} {
			if strings.HasPrefix(d, bad) {
				t.Errorf("policy depends on %s", d)
			}
		}
	}

	// Direct imports: the standard library's pure packages and semver only.
	out, err = exec.Command(goBin, "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list -f: %v", err)
	}
	allowed := []string{"errors", "fmt", "regexp", "strconv", "strings", "time", "github.com/Masterminds/semver/v3"}
	for _, imp := range strings.Fields(string(out)) {
		if !slices.Contains(allowed, imp) {
			t.Errorf("policy imports %s; allowed: %v", imp, allowed)
		}
	}
}
