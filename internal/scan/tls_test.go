package scan_test

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"

	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

func quietRegistry() http.Handler { return registry.New(registry.Logger(log.New(io.Discard, "", 0))) }

// dialing returns a transport that connects every request to addr, whatever its host: a
// registry named like a real one ("registry.test", "example.com") served on loopback.
func dialing(addr string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return t
}

func tagsOf(t *testing.T, opts scan.Options, repo string) ([]string, error) {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	opts.Retry = scan.Retry{Attempts: 1}
	res, err := scan.New(opts).Scan(ctxT(t), r, scan.Need{})
	if err != nil {
		return nil, err
	}
	return res.Tags, nil
}

// TestInsecureRegistry: a registry on plain HTTP under a name go-containerregistry would
// reach over HTTPS is scanned when its host is marked Insecure, and not otherwise.
func TestInsecureRegistry(t *testing.T) {
	reg := httptest.NewServer(quietRegistry())
	defer reg.Close()
	addr := strings.TrimPrefix(reg.URL, "http://")
	push(t, addr, authn.Anonymous, "team/app", "1.0.0", testenv.ImageSpec{})
	const host = "registry.test:5000"
	opts := scan.Options{Transport: dialing(addr)}
	if _, err := tagsOf(t, opts, host+"/team/app"); err == nil {
		t.Fatal("a plain-HTTP registry was scanned over HTTPS")
	}
	opts.Hosts = map[string]scan.HostOptions{host: {Insecure: true}}
	if tags, err := tagsOf(t, opts, host+"/team/app"); err != nil || len(tags) != 1 || tags[0] != "1.0.0" {
		t.Fatalf("insecure: %v %v", tags, err)
	}
}

// TestPrivateCA: a registry whose certificate a private CA signed is scanned once the CA is
// trusted (CertPool over its PEM file), and refused before.
func TestPrivateCA(t *testing.T) {
	handler := quietRegistry()
	plain := httptest.NewServer(handler) // to push through
	defer plain.Close()
	secure := httptest.NewUnstartedServer(handler)
	secure.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	secure.StartTLS()
	defer secure.Close()
	push(t, strings.TrimPrefix(plain.URL, "http://"), authn.Anonymous, "team/app", "1.0.0", testenv.ImageSpec{})
	// httptest's certificate names example.com.
	const repo = "example.com/team/app"
	opts := scan.Options{Transport: dialing(strings.TrimPrefix(secure.URL, "https://"))}
	if _, err := tagsOf(t, opts, repo); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a registry signed by an unknown CA: %v", err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	pool, err := scan.CertPool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	opts.RootCAs = pool
	if tags, err := tagsOf(t, opts, repo); err != nil || len(tags) != 1 {
		t.Fatalf("with the CA: %v %v", tags, err)
	}
	if _, err := scan.CertPool(filepath.Join(t.TempDir(), "missing.pem")); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("a missing CA file: %v", err)
	}
	if _, err := scan.CertPool(os.Args[0]); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a file without a certificate: %v", err)
	}
}

// TestRegistryDown: a registry that is down is a scan error naming it.
func TestRegistryDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = tagsOf(t, scan.Options{}, addr+"/team/app")
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("scan of a registry that is down: %v", err)
	}
}
