package scan_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// layout writes repositories straight into the distribution registry's filesystem storage
// (docker/registry/v2 under the registry's root directory): blobs, the repository's
// layer and revision links, and tag links. Far faster than pushing 200,000 tags through
// the API; the registry (no blob descriptor cache configured) serves them at once.
type layout struct {
	root  string // .../docker/registry/v2
	layer string // digest of the one layer every image shares
}

func newLayout(tb testing.TB, storage string) *layout {
	l := &layout{root: filepath.Join(storage, "docker", "registry", "v2")}
	l.layer = l.blob(tb, []byte("imagebot benchmark layer"))
	return l
}

func write(tb testing.TB, path string, data []byte) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// blob stores data and returns its digest.
func (l *layout) blob(tb testing.TB, data []byte) string {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	write(tb, filepath.Join(l.root, "blobs", "sha256", h[:2], h, "data"), data)
	return "sha256:" + h
}

func (l *layout) repoDir(repo string) string { return filepath.Join(l.root, "repositories", repo) }

func hexOf(d string) string { return d[len("sha256:"):] }

func (l *layout) linkLayer(tb testing.TB, repo, d string) {
	write(tb, filepath.Join(l.repoDir(repo), "_layers", "sha256", hexOf(d), "link"), []byte(d))
}

func (l *layout) linkRevision(tb testing.TB, repo, d string) {
	write(tb, filepath.Join(l.repoDir(repo), "_manifests", "revisions", "sha256", hexOf(d), "link"), []byte(d))
}

func (l *layout) tag(tb testing.TB, repo, tag, d string) {
	dir := filepath.Join(l.repoDir(repo), "_manifests", "tags", tag)
	write(tb, filepath.Join(dir, "current", "link"), []byte(d))
	write(tb, filepath.Join(dir, "index", "sha256", hexOf(d), "link"), []byte(d))
}

type descriptor struct {
	MediaType string            `json:"mediaType"`
	Size      int               `json:"size"`
	Digest    string            `json:"digest"`
	Platform  map[string]string `json:"platform,omitempty"`
}

// image stores a config built at created for arch and its schema 2 manifest in repo, and
// returns the manifest's digest and size.
func (l *layout) image(tb testing.TB, repo, arch string, created time.Time) (string, int) {
	cfg, _ := json.Marshal(map[string]any{"architecture": arch, "os": "linux", "created": created,
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{l.layer}},
		"config": map[string]any{"Labels": map[string]string{"repository": repo}}}) // unique per repository
	cd := l.blob(tb, cfg)
	l.linkLayer(tb, repo, cd)
	l.linkLayer(tb, repo, l.layer)
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
		"config": descriptor{MediaType: "application/vnd.docker.container.image.v1+json", Size: len(cfg), Digest: cd},
		"layers": []descriptor{{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Size: 24, Digest: l.layer}}})
	md := l.blob(tb, m)
	l.linkRevision(tb, repo, md)
	return md, len(m)
}

// index stores a linux/amd64 + linux/arm64 manifest list built at created.
func (l *layout) index(tb testing.TB, repo string, created time.Time) string {
	var ms []descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		d, n := l.image(tb, repo, arch, created)
		ms = append(ms, descriptor{MediaType: "application/vnd.docker.distribution.manifest.v2+json", Size: n, Digest: d,
			Platform: map[string]string{"architecture": arch, "os": "linux"}})
	}
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2,
		"mediaType": "application/vnd.docker.distribution.manifest.list.v2+json", "manifests": ms})
	d := l.blob(tb, b)
	l.linkRevision(tb, repo, d)
	return d
}

// benchRepo fills repo with tags tags: candidates "release-NN" (every fifth a multi-arch
// index) built an hour apart, the rest "build-NNNN" on one shared image.
func (l *layout) benchRepo(tb testing.TB, repo string, tags, candidates int) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range candidates {
		created := start.Add(time.Duration(i) * time.Hour)
		var d string
		if i%5 == 0 {
			d = l.index(tb, repo, created)
		} else {
			d, _ = l.image(tb, repo, "amd64", created)
		}
		l.tag(tb, repo, fmt.Sprintf("release-%02d", i), d)
	}
	shared, _ := l.image(tb, repo, "amd64", start.Add(-time.Hour))
	for j := range tags - candidates {
		l.tag(tb, repo, fmt.Sprintf("build-%04d", j), shared)
	}
}
