package scan_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

// TestHostileRedirects: a registry whose blob GETs redirect where a client must not follow
// fails that repository's scan with a clear error (not one tag's), caches nothing of the
// image as described, and the scan works once the registry behaves. The registry is named
// like a public one and every connection goes to loopback (dialing), so a redirect that
// were followed would not leave the machine.
func TestHostileRedirects(t *testing.T) {
	for _, tc := range []struct {
		name, location, want string
	}{
		{"metadata service", "http://169.254.169.254/latest/meta-data/iam/", `private/link-local host "169.254.169.254"`},
		{"private address", "http://10.1.2.3/blob", `private/link-local host "10.1.2.3"`},
		{"loop", "/loop", "stopped after 10 redirects"},
		{"scheme", "ftp://cdn.example.com/blob", "unsupported protocol scheme"},
		// Followed, but the storage fails its TLS handshake: a connection failure, said
		// as such (not as a refused redirect), without the URL.
		{"storage without TLS", "https://cdn.example.com/blob?X-Amz-Signature=s3cr3t", "server gave HTTP response to HTTPS client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hostile atomic.Bool
			hostile.Store(true)
			inner := quietRegistry()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if hostile.Load() && (r.URL.Path == "/loop" || r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")) {
					http.Redirect(w, r, tc.location, http.StatusTemporaryRedirect)
					return
				}
				inner.ServeHTTP(w, r)
			}))
			defer srv.Close()
			addr := strings.TrimPrefix(srv.URL, "http://")
			push(t, addr, authn.Anonymous, "team/app", "v1", testenv.ImageSpec{Created: base})
			const host = "registry.example.com"
			sc := scan.New(scan.Options{Transport: dialing(addr), Hosts: map[string]scan.HostOptions{host: {Insecure: true}}})
			repo := repoOf(t, host, "team/app")
			need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
			res, err := sc.Scan(ctxT(t), repo, need)
			refused := tc.name != "storage without TLS"
			if errors.Is(err, scan.ErrBadResponse) != refused || strings.Contains(err.Error(), "redirect refused") != refused ||
				strings.Contains(err.Error(), "s3cr3t") ||
				!strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "scan "+repo.Name()+": describe v1@sha256:") {
				t.Fatalf("scan = %+v, %v; want the repository's scan to fail with the refused redirect (%s)", res, err, tc.want)
			}
			hostile.Store(false)
			res, err = sc.Scan(ctxT(t), repo, need)
			if err != nil || !res.Images["v1"].Created.Equal(base) || res.MetaMiss != 1 {
				t.Errorf("once the registry behaves: %v, %+v; want v1 described afresh", err, res)
			}
		})
	}
}

// TestHostileTokenServers: a token service that answers something other than a token, or a
// secure registry whose realm is plain HTTP, fails that registry's scans with an error
// naming the repository; the scan of a healthy registry by the same scanner is unaffected.
func TestHostileTokenServers(t *testing.T) {
	healthy := httptest.NewServer(quietRegistry())
	defer healthy.Close()
	push(t, strings.TrimPrefix(healthy.URL, "http://"), authn.Anonymous, "team/app", "v1", testenv.ImageSpec{Created: base})

	var tokenRequests atomic.Int32
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenRequests.Add(1)
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>secret-looking text</body></html>")
	}))
	defer tokens.Close()
	realm := "http://localhost:" + tokens.URL[strings.LastIndex(tokens.URL, ":")+1:] + "/token"
	challenge := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="registry.example.com"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	plain := httptest.NewServer(challenge)
	defer plain.Close()
	secure := httptest.NewUnstartedServer(challenge)
	secure.Config.ErrorLog = log.New(io.Discard, "", 0)
	secure.StartTLS()
	defer secure.Close()
	pool := secure.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

	for _, tc := range []struct {
		name, repo string
		opts       scan.Options
		want       string
	}{
		{"token is not JSON", strings.TrimPrefix(plain.URL, "http://") + "/team/app", scan.Options{},
			"bad response: token response is not JSON"},
		// httptest's certificate names example.com.
		{"plain-HTTP realm for an HTTPS registry", "example.com/team/app",
			scan.Options{Transport: dialing(strings.TrimPrefix(secure.URL, "https://")), RootCAs: pool},
			`realm scheme "http" not allowed for a secure registry`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tokenRequests.Load()
			repo, err := name.NewRepository(tc.repo)
			if err != nil {
				t.Fatal(err)
			}
			_, err = scan.New(tc.opts).Scan(ctxT(t), repo, scan.Need{})
			if err == nil || !strings.HasPrefix(err.Error(), "scan "+tc.repo+": authenticate: ") || !strings.Contains(err.Error(), tc.want) ||
				strings.Contains(err.Error(), "secret-looking") {
				t.Errorf("scan: %v; want an authentication error naming the repository and saying %q", err, tc.want)
			}
			if tc.name == "plain-HTTP realm for an HTTPS registry" && tokenRequests.Load() != before {
				t.Errorf("the plain-HTTP realm was asked for a token")
			}
		})
	}
	// The healthy registry, through a scanner that just failed on the others.
	sc := scan.New(scan.Options{})
	if res, err := sc.Scan(ctxT(t), repoOf(t, strings.TrimPrefix(healthy.URL, "http://"), "team/app"), scan.Need{}); err != nil || len(res.Tags) != 1 {
		t.Errorf("healthy registry: %v", err)
	}
}

// TestRefusedRedirectHidesURL: a refused redirect of a manifest GET (a loop through a signed
// URL) fails the scan without quoting the URL: its query may hold a signature.
func TestRefusedRedirectHidesURL(t *testing.T) {
	const secret = "c2lnbmF0dXJlLXNlY3JldA"
	inner := quietRegistry()
	var hostile atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hostile.Load() && r.Method == http.MethodGet && (r.URL.Path == "/loop" || strings.Contains(r.URL.Path, "/manifests/sha256:")) {
			http.Redirect(w, r, "/loop?X-Amz-Signature="+secret, http.StatusTemporaryRedirect)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	push(t, addr, authn.Anonymous, "team/app", "v1", testenv.ImageSpec{Created: base})
	hostile.Store(true)
	repo := repoOf(t, addr, "team/app")
	_, err := scan.New(scan.Options{}).Scan(ctxT(t), repo, scan.Need{Match: func(string) bool { return true }, BuildTime: true})
	if err == nil || !strings.Contains(err.Error(), "redirect refused") || strings.Contains(err.Error(), secret) ||
		strings.Contains(err.Error(), "/loop") {
		t.Errorf("scan: %v; want the refused redirect, without its URL", err)
	}
}
