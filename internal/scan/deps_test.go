package scan_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// scan reads pull secrets through its own Secret type and leaves the cloud SDKs to the
// cloudauth subpackage: it must not pull in client-go, the AWS or Azure SDKs, or go-git.
func TestNoHeavyDependencies(t *testing.T) {
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
	if !slices.Contains(deps, "imagebot.dev/imagebot/internal/scan") {
		t.Fatalf("go list -deps did not list the package itself: %q", deps)
	}
	for _, d := range deps {
		for _, bad := range []string{"k8s.io/", "sigs.k8s.io/", "github.com/go-git/", "github.com/aws/",
			"github.com/Azure/", "github.com/awslabs/", "github.com/chrismellard/", "cloud.google.com/"} {
			if strings.HasPrefix(d, bad) {
				t.Errorf("scan depends on %s", d)
			}
		}
	}
}
