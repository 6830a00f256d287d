package scan

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"imagebot.dev/imagebot/internal/policy"
)

// Defaults; see the package documentation.
const (
	DefaultTagCap         = 50000
	DefaultRequestTimeout = 30 * time.Second
	DefaultScanTimeout    = 5 * time.Minute
	DefaultMaxRetryAfter  = 10 * time.Second
	DefaultDigestRecheck  = 24 * time.Hour
	DefaultSessionTTL     = 10 * time.Minute
	DefaultConcurrency    = 4
)

// HostOptions are settings for one registry host.
type HostOptions struct {
	Limit Limit
	// PageSize is the n= of tag listings (0: the registry's default page; quay.io gets 100
	// unless set: it rejects more).
	PageSize int
	// Insecure speaks plain HTTP to the host. (Loopback and RFC 1918 addresses, and
	// "localhost", get plain HTTP without it, as go-containerregistry decides.)
	Insecure bool
}

// Options configures a Scanner. The zero value works: anonymous, in-memory cache, defaults.
type Options struct {
	// Keychain resolves credentials for scans whose Need has no Credentials (nil:
	// anonymous).
	Keychain authn.Keychain
	// Transport is the HTTP transport under the scanner's retries and auth (nil: a clone of
	// http.DefaultTransport).
	Transport http.RoundTripper
	// RootCAs are the certificate authorities trusted (nil: the system's, or Transport's own
	// when it is not an *http.Transport). See CertPool.
	RootCAs *x509.CertPool
	// Cache persists tags and metadata across restarts (nil: memory only).
	Cache   *Cache
	Metrics *Metrics
	// Limit is every host's token bucket unless Hosts says otherwise.
	Limit Limit
	// PageSize is the default page size of tag listings (0: the registry's).
	PageSize int
	// Hosts overrides Limit and PageSize per registry host ("quay.io", "127.0.0.1:5000").
	Hosts map[string]HostOptions
	// TagCap is the most tags a repository may list (default DefaultTagCap); Need.TagCap
	// overrides it per repository. A repository with more fails with ErrTagCap.
	TagCap int
	// Platform is the image of a multi-arch index whose build time counts (default
	// linux/amd64). The index's own digest is what Image.Digest pins.
	Platform v1.Platform
	// RequestTimeout bounds each attempt of each request, body included.
	RequestTimeout time.Duration
	// ScanTimeout bounds a whole Scan.
	ScanTimeout time.Duration
	Retry       Retry
	// MaxRetryAfter is the longest Retry-After waited inside a scan; a longer one fails the
	// scan with ErrRateLimited and the wait, for the scheduler to honour.
	MaxRetryAfter time.Duration
	// Concurrency is how many tags of one repository are described at once.
	Concurrency int
	// DigestRecheck is how old a cached tag→digest may get before a HEAD checks it again
	// (negative: never). Tracked tags are checked on every scan.
	DigestRecheck time.Duration
	// SessionTTL is how long an authenticated session (the /v2/ ping and token) is reused.
	SessionTTL time.Duration
	// PullReserve is the share of a registry's announced pull budget (Docker Hub's
	// RateLimit-Limit) left unspent for the cluster's own image pulls (default
	// DefaultPullReserve; negative: none).
	PullReserve float64
}

// Need says what a scan must find out beyond the list of tags.
type Need struct {
	// Credentials for this repository (zero: Options.Keychain).
	Credentials Credentials
	// Match selects the tags to describe, usually (*policy.Policy).Match; nil selects none.
	Match func(tag string) bool
	// BuildTime fetches the image config's "created" for described tags (implies Digest).
	BuildTime bool
	// BuildTimeOf, when set, narrows BuildTime to the described tags it selects; the others
	// get their digest only. The scheduler sets it when watches that rank by build time
	// and watches that do not (a glob: and a semver: policy) share a repository, so the
	// semver tags cost no pull.
	BuildTimeOf func(tag string) bool
	// Digest resolves the digest of described tags.
	Digest bool
	// Track lists mutable tags (e.g. "latest", or a deployed tag the policy follows by
	// digest): described on every scan with a HEAD to see whether the digest moved.
	Track []string
	// TagCap overrides Options.TagCap for this repository.
	TagCap int
	// Progress, when set, is told how far the scan has got in describing the tags it
	// selected, from the scanning goroutines (with the scan's lock held: return quickly).
	Progress func(Progress)
}

// Image is what the scanner knows of one tag.
type Image struct {
	Digest    string    // manifest or index digest: what to pin
	Created   time.Time // build time (of Options.Platform's image in an index); zero when unknown
	MediaType string
}

// Result is one scan of one repository.
type Result struct {
	Repo name.Repository
	// Tags is every tag listed, sorted and unique.
	Tags []string
	// Images describes the tags Need selected.
	Images map[string]Image
	// TagErrors holds the selected tags whose metadata could not be read for a reason
	// that retrying soon will not fix (a missing config blob, a malformed manifest); they
	// stay in Tags without an Image.
	TagErrors map[string]error
	ListedAt  time.Time
	// Requests is the number of HTTP requests the scan made, auth and redirects included;
	// Pulls its manifest GETs (what Docker Hub counts against a pull budget); Waited the
	// time it spent waiting for rate limits and pull budgets; MetaHits and MetaMisses its
	// metadata cache lookups, per tag.
	Requests           int
	Pulls              int
	Waited             time.Duration
	MetaHits, MetaMiss int
}

// Candidates returns the tags as policy candidates, with digest and build time where known.
func (r *Result) Candidates() []policy.Candidate {
	out := make([]policy.Candidate, len(r.Tags))
	for i, t := range r.Tags {
		img := r.Images[t]
		out[i] = policy.Candidate{Tag: t, Digest: img.Digest, Created: img.Created}
	}
	return out
}

// Scanner lists tags and describes images. It is safe for concurrent use.
type Scanner struct {
	opts     Options
	store    store
	base     *retrying
	platform string

	mu       sync.Mutex
	sessions map[string]session
}

type session struct {
	rt      http.RoundTripper
	created time.Time
}

// New returns a Scanner.
func New(opts Options) *Scanner {
	if opts.TagCap <= 0 {
		opts.TagCap = DefaultTagCap
	}
	if opts.Platform.OS == "" {
		opts.Platform = v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.ScanTimeout <= 0 {
		opts.ScanTimeout = DefaultScanTimeout
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.DigestRecheck == 0 {
		opts.DigestRecheck = DefaultDigestRecheck
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	opts.Retry = opts.Retry.withDefaults()
	if opts.PullReserve == 0 {
		opts.PullReserve = DefaultPullReserve
	}
	inner := opts.Transport
	if inner == nil {
		inner = http.DefaultTransport.(*http.Transport).Clone()
	}
	if t, ok := inner.(*http.Transport); ok && opts.RootCAs != nil {
		t = t.Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12}
		inner = t
	}
	hostLimits := map[string]Limit{}
	for h, o := range opts.Hosts {
		hostLimits[h] = o.Limit
	}
	s := &Scanner{
		opts:     opts,
		platform: opts.Platform.String(),
		sessions: map[string]session{},
		base: &retrying{inner: inner, limits: newLimiters(opts.Limit, hostLimits), budgets: newBudgets(opts.PullReserve), retry: opts.Retry,
			timeout: opts.RequestTimeout, maxWait: opts.MaxRetryAfter, metrics: opts.Metrics},
	}
	if opts.Cache != nil {
		s.store = opts.Cache
	} else {
		s.store = newMemStore()
	}
	return s
}

// Scan lists repo's tags (every page) and describes the tags need selects. It fails, with
// no partial result, when the listing fails or is partial (ErrTagCap) or when describing a
// tag fails for a reason that may heal (rate limits, 5xx, timeouts: the caller keeps its
// last good result). Errors read "scan HOST/REPO: STEP: CAUSE".
func (s *Scanner) Scan(ctx context.Context, repo name.Repository, need Need) (*Result, error) {
	if s.opts.Hosts[repo.RegistryStr()].Insecure && repo.Scheme() != "http" {
		if r, err := name.NewRepository(repo.Name(), name.Insecure); err == nil {
			repo = r
		}
	}
	start := time.Now()
	st := &stats{}
	ctx, cancel := context.WithTimeout(withStats(ctx, st), s.opts.ScanTimeout)
	defer cancel()
	res, err := s.scan(ctx, repo, need)
	s.opts.Metrics.scanned(repo.RegistryStr(), time.Since(start), err)
	if err != nil {
		s.dropSession(repo, need.Credentials)
		return nil, fmt.Errorf("scan %s: %w", repo.Name(), err)
	}
	res.Requests = int(st.requests.Load())
	res.Pulls = int(st.pulls.Load())
	res.Waited = time.Duration(st.waited.Load())
	return res, nil
}

func (s *Scanner) scan(ctx context.Context, repo name.Repository, need Need) (*Result, error) {
	rt, err := s.session(ctx, repo, need.Credentials)
	if err != nil {
		return nil, err
	}
	tags, err := s.list(ctx, rt, repo, need.TagCap)
	if err != nil {
		return nil, fmt.Errorf("list tags: %w", err)
	}
	res := &Result{Repo: repo, Tags: tags, ListedAt: time.Now(), Images: map[string]Image{}}
	key := repo.Name()
	prev, err := s.store.repo(key)
	if err != nil {
		prev = nil // a broken cache costs requests, never a scan
	}
	rec, metas, err := s.describeAll(ctx, rt, repo, need, prev, res)
	if err != nil {
		// What was described stays: the next scan (after a restart too) goes on from there.
		_ = s.store.commit(key, rec, metas)
		return nil, err
	}
	if prev != nil && slices.Equal(prev.Tags, rec.Tags) && sameDigests(prev.Digests, rec.Digests) {
		rec = nil // nothing new to write
	}
	_ = s.store.commit(key, rec, metas) // a failed write costs requests next time, not this scan
	return res, nil
}

func sameDigests(a, b map[string]tagDigest) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || w.Digest != v.Digest || (w.Checked-v.Checked) > 3600 {
			return false
		}
	}
	return true
}

// session returns an authenticated transport for repo, reusing one for SessionTTL.
func (s *Scanner) session(ctx context.Context, repo name.Repository, cred Credentials) (http.RoundTripper, error) {
	key := repo.Name() + "\x00" + cred.ID
	s.mu.Lock()
	sess, ok := s.sessions[key]
	s.mu.Unlock()
	if ok && time.Since(sess.created) < s.opts.SessionTTL {
		return sess.rt, nil
	}
	kc := cred.Keychain
	if kc == nil {
		kc = s.opts.Keychain
	}
	auth := authn.Anonymous
	if kc != nil {
		a, err := authn.Resolve(ctx, kc, repo)
		if err != nil {
			return nil, fmt.Errorf("resolve credentials: %w", err)
		}
		auth = a
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, s.base, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("authenticate: %w", ctx.Err())
		}
		return nil, fmt.Errorf("authenticate: %w", cleanAuthError(err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) > 4096 {
		for k, v := range s.sessions {
			if time.Since(v.created) >= s.opts.SessionTTL {
				delete(s.sessions, k)
			}
		}
	}
	s.sessions[key] = session{rt: rt, created: time.Now()}
	return rt, nil
}

// cleanAuthError keeps what go-containerregistry's handshake error says about the status,
// or our own transport's error, and drops the rest (URLs of token services).
func cleanAuthError(err error) error {
	if o := ours(err); o != nil {
		return o
	}
	// fromTransport gives err back when it is not a registry's status; err may be of a type
	// that == cannot compare (go-containerregistry's multierrs, when the ping fails over
	// both HTTPS and HTTP), so test for the status type instead.
	var te *transport.Error
	if errors.As(err, &te) {
		return fromTransport(err)
	}
	// The token service's answer was not a token; go-containerregistry's own errors would
	// repeat the body, which may hold anything.
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn), errors.As(err, &typ):
		return badResponse("token response is not JSON")
	case strings.HasPrefix(err.Error(), "no token in bearer response"):
		return badResponse("token response has no token")
	}
	return err
}

func (s *Scanner) dropSession(repo name.Repository, cred Credentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, repo.Name()+"\x00"+cred.ID)
}

func (s *Scanner) pageSize(host string) int {
	if h, ok := s.opts.Hosts[host]; ok && h.PageSize > 0 {
		return h.PageSize
	}
	if n, ok := knownPageSizes[host]; ok {
		return n
	}
	return s.opts.PageSize
}

// knownPageSizes are the tag page sizes public registries serve best, used unless the host's
// own HostOptions.PageSize says otherwise: Quay pages by 50 without n= and refuses more than
// 100 (a 1,000-tag listing is 10 requests instead of 20).
var knownPageSizes = map[string]int{"quay.io": 100}

// CertPool returns the system's certificate authorities plus those in the PEM files (a
// registry's private CA). An unreadable file, or one without a certificate, is an error
// naming it.
func CertPool(files ...string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", f)
		}
	}
	return pool, nil
}
