package sync

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// kustomizationNames are the file names kustomize reads in a directory.
var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// refuseRemote checks, before kustomize runs, that the kustomization in dir and every local
// kustomization it includes name only files and directories of the checkout. kustomize
// would fetch a remote base (github.com/org/repo//path?ref=v1, https://…) with a git binary
// or an HTTP client: the reconciler applies what the commit holds, nothing from elsewhere.
func refuseRemote(dir string, seen map[string]bool) error {
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	var raw []byte
	for _, n := range kustomizationNames {
		if b, err := os.ReadFile(filepath.Join(dir, n)); err == nil {
			raw = b
			break
		}
	}
	if raw == nil {
		return nil // a plain directory of manifests
	}
	var k struct {
		Resources  []string `json:"resources"`
		Bases      []string `json:"bases"`
		Components []string `json:"components"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		return nil // kustomize reports it, with its own message
	}
	for _, entry := range append(append(k.Resources, k.Bases...), k.Components...) {
		if strings.Contains(entry, "://") || strings.HasPrefix(entry, "git@") || strings.Contains(entry, "?ref=") {
			return fmt.Errorf("%q is remote: only files and directories of the checkout are built", entry)
		}
		p := filepath.Join(dir, entry)
		st, err := os.Stat(p)
		if err != nil {
			if looksLikeHost(entry) {
				return fmt.Errorf("%q is remote: only files and directories of the checkout are built", entry)
			}
			continue // a missing local file: kustomize says so
		}
		if st.IsDir() {
			if err := refuseRemote(p, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// looksLikeHost says whether a path starts with a host name ("github.com/org/repo").
func looksLikeHost(p string) bool {
	first, _, ok := strings.Cut(p, "/")
	return ok && strings.Contains(first, ".") && first != "." && first != ".."
}
