package repoconfig_test

import (
	"os"
	"path/filepath"
	"testing"

	"imagebot.dev/imagebot/internal/config"
	"imagebot.dev/imagebot/internal/repoconfig"
)

func parse(t *testing.T, spec string) *config.Repository {
	t.Helper()
	repos, err := config.Parse("repo.yaml", []byte(`apiVersion: imagebot.dev/v1alpha1
kind: Repository
metadata: {name: r}
spec:
  git: {url: "ssh://git@127.0.0.1/r.git", paths: [apps], auth: {sshKeyFile: /dev/null, knownHostsFile: /dev/null}}
`+spec))
	if err != nil {
		t.Fatal(err)
	}
	return repos[0]
}

func TestExcluded(t *testing.T) {
	images := config.Images{Include: []string{"registry.example.com/*", "quay.io/team/*"}, Exclude: []string{"registry.example.com/legacy/*"}}
	for _, tc := range []struct{ repo, want string }{
		{"registry.example.com/team/app", ""},
		{"quay.io/team/app", ""},
		{"quay.io/other/app", `not matched by spec.images.include ["registry.example.com/*" "quay.io/team/*"]`},
		{"registry.example.com/legacy/app", `matched by spec.images.exclude "registry.example.com/legacy/*"`},
	} {
		if got := repoconfig.Excluded(images, tc.repo); got != tc.want {
			t.Errorf("Excluded(%s) = %q, want %q", tc.repo, got, tc.want)
		}
	}
	if repoconfig.Excluded(config.Images{}, "anything/at/all") != "" {
		t.Error("no include and no exclude excludes")
	}
	include := repoconfig.Include(parse(t, "  images: {exclude: [\"*/nginx\"]}\n"))
	if include("docker.io/library/nginx") || !include("docker.io/library/redis") {
		t.Error("Include does not follow spec.images.exclude")
	}
}

func TestFinderAndCredentials(t *testing.T) {
	docker := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(docker, []byte(`{"auths": {"registry.example.com": {"auth": "dTpw"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := parse(t, `  registries:
  - {host: registry.example.com, dockerConfigFile: `+docker+`}
  - {host: quay.io, pageSize: 100}
  markers:
    "flux-system:app": {image: registry.example.com/team/app, policy: "semver:~1.8"}
`)
	f := repoconfig.Finder(r)
	if len(f.Paths) != 1 || f.Paths[0] != "apps" || f.Markers["flux-system:app"].Policy != "semver:~1.8" ||
		f.Markers["flux-system:app"].Image != "registry.example.com/team/app" {
		t.Errorf("Finder: paths %q, markers %+v", f.Paths, f.Markers)
	}
	creds, err := repoconfig.Credentials(r)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := creds["registry.example.com"]; !ok || c.Keychain == nil || len(creds) != 1 {
		t.Errorf("Credentials: %+v", creds)
	}
	r.Spec.Registries[0].DockerConfigFile = filepath.Join(t.TempDir(), "missing.json")
	if _, err := repoconfig.Credentials(r); err == nil {
		t.Error("a missing docker config file is not an error")
	}
}
