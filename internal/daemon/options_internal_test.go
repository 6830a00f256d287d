package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/config"
)

// TestScanOptions: registry settings reach the scanner (limits, page size, plain HTTP, a
// private CA), and an unusable CA file is an error naming it.
func TestScanOptions(t *testing.T) {
	dir := t.TempDir()
	parse := func(registries string) []*config.Repository {
		t.Helper()
		return []*config.Repository{testRepo(t, "r", "  registries:\n"+registries)}
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, selfSigned(t), 0o644); err != nil {
		t.Fatal(err)
	}
	repos := parse("  - {host: registry.internal:5000, insecure: true, rps: 2, burst: 3, pageSize: 100}\n" +
		"  - {host: harbor.internal, caFile: " + ca + "}\n")
	opts, err := scanOptions(repos, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := opts.Hosts["registry.internal:5000"]
	if !h.Insecure || h.Limit.RPS != 2 || h.Limit.Burst != 3 || h.PageSize != 100 || opts.RootCAs == nil {
		t.Errorf("scan options: %+v, RootCAs %v", opts.Hosts, opts.RootCAs != nil)
	}
	missing := filepath.Join(dir, "nope.pem")
	if _, err := scanOptions(parse("  - {host: harbor.internal, caFile: "+missing+"}\n"), nil, nil); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing CA file: %v", err)
	}
	if scanSettings(repos) == scanSettings(parse("  - {host: registry.internal:5000}\n")) {
		t.Error("scanSettings does not tell registry settings apart")
	}
	before := scanSettings(repos)
	if err := os.WriteFile(ca, selfSigned(t), 0o644); err != nil { // the CA rotated
		t.Fatal(err)
	}
	if scanSettings(repos) == before {
		t.Error("scanSettings does not see a rotated CA file")
	}
}

// selfSigned returns a PEM certificate of a throwaway CA.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestPruneKinds(t *testing.T) {
	got := pruneKinds([]string{"CustomResourceDefinition", "Namespace"})
	if len(got) != 2 || got[0].Kind != "Namespace" || got[1].Group != "apiextensions.k8s.io" {
		t.Errorf("pruneKinds: %v", got)
	}
	if got := pruneKinds(nil); len(got) != 0 {
		t.Errorf("pruneKinds(nil): %v", got)
	}
}

func TestScanConflicts(t *testing.T) {
	parse := func(name, spec string) *config.Repository { return testRepo(t, name, spec) }
	a := parse("a", "  scan: {platform: linux/amd64}\n  registries: [{host: r.example.com, rps: 5}]\n")
	b := parse("b", "  scan: {platform: linux/arm64}\n  registries: [{host: r.example.com, rps: 1}, {host: other.example.com}]\n")
	c := parse("c", "  registries: [{host: other.example.com}]\n")
	got := scanConflicts([]*config.Repository{a, b, c})
	if len(got) != 2 || !strings.Contains(got[0], "linux/arm64 in b") || !strings.Contains(got[1], "r.example.com: set differently in b") {
		t.Errorf("conflicts: %q", got)
	}
	if got := scanConflicts([]*config.Repository{a, a}); len(got) != 0 {
		t.Errorf("the same settings twice: %q", got)
	}
}
