package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Profile names a public registry whose behaviour a ProfileRegistry copies, as far as a
// scanner can notice it. Every profile redirects blob GETs (307) to a "CDN" on another
// address, with a signed URL that expires and a refusal for any request carrying an
// Authorization header, the way S3 and Cloudflare behave behind the real registries.
type Profile string

const (
	// ProfileDockerHub is docker.io: a bearer token server on another host ("localhost:PORT"),
	// anonymous and credentialed tokens, and a pull budget per identity: every manifest GET
	// answered 200 is a pull, every manifest answer carries ratelimit-limit,
	// ratelimit-remaining and docker-ratelimit-source, and a GET past the budget is a 429
	// TOOMANYREQUESTS with Retry-After. HEADs and blob GETs are free.
	ProfileDockerHub Profile = "dockerhub"
	// ProfileGHCR is ghcr.io: the token realm is /token on the registry's own host.
	ProfileGHCR Profile = "ghcr"
	// ProfileQuay is quay.io: anonymous bearer tokens from /token on the registry's own host,
	// and tag pages capped: 50 tags without n, n up to 100 honoured, n above 100 a 400.
	// Pages are chained with a Link header.
	ProfileQuay Profile = "quay"
	// ProfileECR is Amazon ECR: basic auth as user "AWS" with passwords that expire
	// (RotatePassword issues a new one, as `aws ecr get-login-password` does).
	ProfileECR Profile = "ecr"
)

// Defaults of ProfileOptions. The pull budget is Docker Hub's for an anonymous address since
// 2025: 10 pulls an hour (it was 100 per 6 hours).
const (
	DefaultPullBudget  = 10
	DefaultPullWindow  = time.Hour
	DefaultPasswordTTL = 12 * time.Hour
)

// ProfileOptions configures StartProfileRegistry.
type ProfileOptions struct {
	Profile Profile
	// PullBudget is how many manifest GETs each identity (the client's address when
	// anonymous, else the user) may make per Window on ProfileDockerHub (0: 10).
	PullBudget int
	// Window is the budget's rolling window: a pull stops counting Window after it was made
	// (0: 1h).
	Window time.Duration
	// Private lists repositories ("acme/app") that refuse anonymous tokens.
	Private []string
	// PasswordTTL is the lifetime of a ProfileECR password (0: 12h). Other profiles'
	// passwords do not expire.
	PasswordTTL time.Duration
}

// ProfileRegistry is an in-process registry (go-containerregistry's pkg/registry) on loopback
// behaving like a public registry; see Profile. Its listeners: the registry (Host), the CDN,
// the token server (ProfileDockerHub only), and a private one for Push and tests' setup
// that bypasses auth, counting and budgets.
type ProfileRegistry struct {
	Profile  Profile
	Host     string // "127.0.0.1:PORT": the registry part of image references
	CDN      string // "localhost:PORT": where blob GETs are redirected
	Realm    string // the token URL ("" for ProfileECR)
	Username string // the user whose credentials Auth returns ("AWS" for ProfileECR)

	opts    ProfileOptions
	service string // the token service ("registry.docker.io")
	key     []byte // signs tokens and CDN URLs
	private string // "127.0.0.1:PORT": the bare registry
	inner   http.Handler
	blobs   *profileBlobs
	servers []*http.Server
	lns     []net.Listener
	close   sync.Once

	mu        sync.Mutex
	counts    ProfileCounts
	password  string
	passwords map[string]time.Time   // password -> expiry (zero: never)
	pulls     map[string][]time.Time // identity -> its pulls in the window, oldest first
}

// ProfileCounts counts what clients did to a ProfileRegistry (Push and Tag are not counted).
// Requests are counted when they arrive, whatever the answer.
type ProfileCounts struct {
	ManifestGETs, ManifestHEADs int // on the registry, by tag or digest
	Pulls                       int // manifest GETs answered 200 (what Docker Hub bills)
	BlobGETs                    int // blob GETs on the registry (each answered with a redirect)
	CDNGETs                     int // requests to the CDN
	CDNWithAuthorization        int // CDN requests that carried an Authorization header
	CDNRefused                  int // CDN requests refused (auth header, bad/expired signature)
	TokenRequests               int
	TagListGETs                 int
	RateLimited                 int // 429s sent
	Unauthorized                int // 401s sent
	Requests                    int // every request to registry + token server + CDN
}

// StartProfileRegistry starts a registry behaving like opts.Profile on loopback. Stop it
// with Close.
func StartProfileRegistry(ctx context.Context, opts ProfileOptions) (*ProfileRegistry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("starting %s registry: %w", opts.Profile, err)
	}
	p := &ProfileRegistry{
		Profile:   opts.Profile,
		Username:  "imagebot",
		key:       make([]byte, 32),
		passwords: map[string]time.Time{},
		pulls:     map[string][]time.Time{},
	}
	switch opts.Profile {
	case ProfileDockerHub:
		p.service = "registry.docker.io"
	case ProfileGHCR:
		p.service = "ghcr.io"
	case ProfileQuay:
		p.service = "quay.io"
	case ProfileECR:
		p.Username = "AWS"
		if opts.PasswordTTL <= 0 {
			opts.PasswordTTL = DefaultPasswordTTL
		}
	default:
		return nil, fmt.Errorf("starting profile registry: unknown profile %q", opts.Profile)
	}
	if opts.PullBudget <= 0 {
		opts.PullBudget = DefaultPullBudget
	}
	if opts.Window <= 0 {
		opts.Window = DefaultPullWindow
	}
	p.opts = opts
	_, _ = rand.Read(p.key)
	p.RotatePassword()
	p.blobs = &profileBlobs{p: p, m: map[string][]byte{}}
	p.inner = registry.New(registry.WithBlobHandler(p.blobs), registry.Logger(discardLogger()))

	ls, err := p.listen()
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("starting %s registry: %w", opts.Profile, err)
	}
	// Every address is set before the first request can arrive.
	p.serve(p.counted(p.serveRegistry), ls.front)
	p.serve(p.inner, ls.private)
	p.serve(p.counted(p.serveCDN), ls.cdn...)
	if len(ls.token) > 0 {
		p.serve(p.counted(p.serveToken), ls.token...)
	}
	return p, nil
}

// profileListeners are a ProfileRegistry's listeners, by server.
type profileListeners struct {
	front, private net.Listener
	cdn, token     []net.Listener // "localhost": on IPv4 and, where there is one, IPv6 loopback
}

// listen opens the listeners and sets the addresses. Close closes them.
func (p *ProfileRegistry) listen() (ls profileListeners, err error) {
	for _, l := range []*net.Listener{&ls.front, &ls.private} {
		if *l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return ls, err
		}
		p.lns = append(p.lns, *l)
	}
	p.Host, p.private = ls.front.Addr().String(), ls.private.Addr().String()
	var port int
	if ls.cdn, port, err = listenLocalhost(); err != nil {
		return ls, err
	}
	p.lns = append(p.lns, ls.cdn...)
	p.CDN = fmt.Sprintf("localhost:%d", port)
	switch p.Profile {
	case ProfileDockerHub:
		if ls.token, port, err = listenLocalhost(); err != nil {
			return ls, err
		}
		p.lns = append(p.lns, ls.token...)
		p.Realm = fmt.Sprintf("http://localhost:%d/token", port)
	case ProfileGHCR, ProfileQuay:
		p.Realm = "http://" + p.Host + "/token"
	}
	return ls, nil
}

// listenLocalhost listens on 127.0.0.1 and, where the machine has an IPv6 loopback, on
// [::1] at the same port, since "localhost" may resolve to either.
func listenLocalhost() ([]net.Listener, int, error) {
	var err error
	for range 20 {
		var l4, l6 net.Listener
		if l4, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return nil, 0, fmt.Errorf("listening on localhost: %w", err)
		}
		port := l4.Addr().(*net.TCPAddr).Port
		if l6, err = net.Listen("tcp6", fmt.Sprintf("[::1]:%d", port)); err == nil {
			return []net.Listener{l4, l6}, port, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			return []net.Listener{l4}, port, nil // no IPv6 loopback
		}
		l4.Close()
	}
	return nil, 0, fmt.Errorf("listening on localhost: %w", err)
}

func (p *ProfileRegistry) serve(h http.Handler, ls ...net.Listener) {
	srv := &http.Server{Handler: h, ErrorLog: discardLogger(), ReadHeaderTimeout: 10 * time.Second}
	p.servers = append(p.servers, srv)
	for _, l := range ls {
		go func() { _ = srv.Serve(l) }()
	}
}

// Close stops every listener and closes client connections.
func (p *ProfileRegistry) Close() {
	p.close.Do(func() {
		for _, s := range p.servers {
			_ = s.Close()
		}
		for _, l := range p.lns {
			_ = l.Close()
		}
	})
}

// Password returns the newest password (from RotatePassword).
func (p *ProfileRegistry) Password() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.password
}

// RotatePassword issues a new password and returns it. Older ones stay valid until they
// expire (ProfileOptions.PasswordTTL on ProfileECR; never on the other profiles).
func (p *ProfileRegistry) RotatePassword() string {
	pw := randomHex(24)
	p.mu.Lock()
	defer p.mu.Unlock()
	var expiry time.Time
	if p.Profile == ProfileECR {
		expiry = time.Now().Add(p.opts.PasswordTTL)
	}
	p.password, p.passwords[pw] = pw, expiry
	return pw
}

// Auth returns basic credentials for Username and the current Password.
func (p *ProfileRegistry) Auth() authn.Authenticator {
	return &authn.Basic{Username: p.Username, Password: p.Password()}
}

// Push pushes a small random image (or index; see ImageSpec) as repo:tag, bypassing auth,
// counting and budgets, and returns its digest.
func (p *ProfileRegistry) Push(ctx context.Context, repo, tag string, spec ImageSpec) (v1.Hash, error) {
	h, err := PushImage(ctx, p.private, authn.Anonymous, repo, tag, spec)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("pushing to the %s registry: %w", p.Profile, err)
	}
	return h, nil
}

// Tag adds tag to the manifest digest in repo, bypassing counting. It does not touch the
// network: 1,000 tags take milliseconds.
func (p *ProfileRegistry) Tag(ctx context.Context, repo string, digest v1.Hash, tag string) error {
	get := p.innerDo(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+digest.String(), "", nil)
	if get.Code != http.StatusOK {
		return fmt.Errorf("tagging %s@%s as %q: reading the manifest: %d %s", repo, digest, tag, get.Code, get.Body)
	}
	put := p.innerDo(ctx, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, get.Header().Get("Content-Type"), get.Body.Bytes())
	if put.Code != http.StatusCreated {
		return fmt.Errorf("tagging %s@%s as %q: %d %s", repo, digest, tag, put.Code, put.Body)
	}
	return nil
}

// innerDo serves one request with the bare registry handler, in process.
func (p *ProfileRegistry) innerDo(ctx context.Context, method, path, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	p.inner.ServeHTTP(rec, req)
	return rec
}

// Counts returns what clients did so far.
func (p *ProfileRegistry) Counts() ProfileCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// ResetCounts zeroes the counts. Pull budgets are kept.
func (p *ProfileRegistry) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = ProfileCounts{}
}

func (p *ProfileRegistry) count(f func(c *ProfileCounts)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.counts)
}

// counted counts every request to h and the 401s and 429s it sends (before they are sent,
// so a client never sees an answer its count misses).
func (p *ProfileRegistry) counted(h func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.count(func(c *ProfileCounts) { c.Requests++ })
		h(&hookWriter{ResponseWriter: w, onStatus: func(code int) {
			switch code {
			case http.StatusUnauthorized:
				p.count(func(c *ProfileCounts) { c.Unauthorized++ })
			case http.StatusTooManyRequests:
				p.count(func(c *ProfileCounts) { c.RateLimited++ })
			}
		}}, r)
	})
}

// hookWriter calls onStatus once, with the status, just before the header is written.
type hookWriter struct {
	http.ResponseWriter
	onStatus func(code int)
	status   int
}

func (w *hookWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.onStatus(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *hookWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// registryPath is what a /v2/ path addresses.
type registryPath struct {
	repo string // "" for /v2/ and the catalog
	kind string // "manifests", "blobs", "uploads", "tags", "referrers" or ""
}

func parseRegistryPath(path string) registryPath {
	elems := strings.Split(strings.Trim(strings.TrimPrefix(path, "/v2"), "/"), "/")
	n := len(elems)
	switch {
	case n >= 3 && elems[n-2] == "uploads" && elems[n-3] == "blobs":
		return registryPath{repo: strings.Join(elems[:n-3], "/"), kind: "uploads"}
	case n >= 2 && elems[n-1] == "uploads" && elems[n-2] == "blobs":
		return registryPath{repo: strings.Join(elems[:n-2], "/"), kind: "uploads"}
	case n >= 3 && elems[n-2] == "tags" && elems[n-1] == "list",
		n >= 3 && (elems[n-2] == "manifests" || elems[n-2] == "blobs" || elems[n-2] == "referrers"):
		return registryPath{repo: strings.Join(elems[:n-2], "/"), kind: elems[n-2]}
	}
	return registryPath{}
}

// serveRegistry is the registry's front: auth, counting, the pull budget, tag pages and the
// blob redirects around the bare registry.
func (p *ProfileRegistry) serveRegistry(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" && (p.Profile == ProfileGHCR || p.Profile == ProfileQuay) {
		p.serveToken(w, r)
		return
	}
	if r.URL.Path != "/v2" && !strings.HasPrefix(r.URL.Path, "/v2/") {
		writeRegistryError(w, http.StatusNotFound, "NOT_FOUND", "not a registry path")
		return
	}
	rp := parseRegistryPath(r.URL.Path)
	get := r.Method == http.MethodGet
	p.count(func(c *ProfileCounts) {
		switch {
		case rp.kind == "manifests" && get:
			c.ManifestGETs++
		case rp.kind == "manifests" && r.Method == http.MethodHead:
			c.ManifestHEADs++
		case rp.kind == "blobs" && get:
			c.BlobGETs++
		case rp.kind == "tags" && get:
			c.TagListGETs++
		}
	})
	who, ok := p.authorize(w, r, rp)
	if !ok {
		return
	}
	switch {
	case rp.kind == "manifests" && (get || r.Method == http.MethodHead):
		p.serveManifest(w, r, who)
	case rp.kind == "tags" && get:
		p.serveTags(w, r, rp.repo)
	case rp.kind == "blobs" && get:
		p.inner.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), redirectKey{}, true)))
	default:
		p.inner.ServeHTTP(w, r)
	}
}

// writeRegistryError answers with the distribution spec's error body.
func writeRegistryError(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// errPasswordExpired is checkPassword's answer for a known password past its expiry.
var errPasswordExpired = errors.New("password expired")

// checkPassword checks user and pass against Username and the issued passwords.
func (p *ProfileRegistry) checkPassword(user, pass string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	expiry, ok := p.passwords[pass]
	switch {
	case user != p.Username || !ok:
		return errors.New("incorrect username or password")
	case !expiry.IsZero() && !time.Now().Before(expiry):
		return errPasswordExpired
	}
	return nil
}
