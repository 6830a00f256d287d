package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

var timeNow = time.Now

const (
	maxManifestBytes = 4 << 20
	maxConfigBytes   = 16 << 20
)

// Progress is how far a scan has got in describing the tags its Need selected.
type Progress struct {
	// Described tags have their digest and, when needed, build time (or a TagErrors entry).
	Described, Total int
	// Digests is how many of them have their digest: the first pass, HEAD by HEAD.
	Digests int
}

func (p Progress) String() string {
	s := fmt.Sprintf("described %d of %d tags", p.Described, p.Total)
	if p.Described < p.Total && p.Digests > p.Described {
		s += fmt.Sprintf(" (%d digests found)", p.Digests)
	}
	return s
}

// describeAll describes the tags need selects into res, in two passes through go-containerregistry's
// remote: the digest of every selected tag (the cache's, else a HEAD: free where registries
// count pulls), then, when build times are needed, each distinct digest never described
// before (GET the manifest by digest, the platform's manifest for an index, the config blob:
// one pull per image, whatever its number of tags). It returns the repository's new cache
// record and the metadata learnt; when it fails part-way, it returns both for what it
// described before the failure, with the error, so that the next scan goes on from there.
func (s *Scanner) describeAll(ctx context.Context, rt http.RoundTripper, repo name.Repository, need Need,
	prev *repoRecord, res *Result) (*repoRecord, map[string]metaRecord, error) {
	rec := &repoRecord{ListedAt: res.ListedAt.Unix(), Tags: res.Tags, Digests: map[string]tagDigest{}}
	listed := make(map[string]bool, len(res.Tags))
	for _, t := range res.Tags {
		listed[t] = true
	}
	if prev != nil { // keep what we knew of tags still listed
		for t, d := range prev.Digests {
			if listed[t] {
				rec.Digests[t] = d
			}
		}
	}
	tracked := map[string]bool{}
	for _, t := range need.Track {
		if listed[t] {
			tracked[t] = true
		}
	}
	var todo []string
	if need.BuildTime || need.Digest || len(tracked) > 0 {
		for _, t := range res.Tags {
			if tracked[t] || (need.Match != nil && need.Match(t)) {
				todo = append(todo, t)
			}
		}
	}
	if len(todo) == 0 {
		return rec, nil, nil
	}
	d := &describer{s: s, repo: repo, res: res, rec: rec, metas: map[string]metaRecord{},
		opts: []remote.Option{remote.WithTransport(rt)},
		prog: progress{host: repo.RegistryStr(), total: len(todo), report: need.Progress, metrics: s.opts.Metrics}}
	d.prog.start()
	defer d.prog.end()

	needsTime := func(tag string) bool {
		return need.BuildTime && (need.BuildTimeOf == nil || need.BuildTimeOf(tag))
	}

	// Pass 1: a digest for every tag.
	digests := make([]string, len(todo))
	err := parallel(ctx, s.opts.Concurrency, len(todo), func(ctx context.Context, i int) error {
		tag := todo[i]
		d.mu.Lock()
		known, hasKnown := rec.Digests[tag]
		d.mu.Unlock()
		digest, desc, checked, err := d.digest(ctx, tag, known, hasKnown, tracked[tag])
		d.mu.Lock()
		defer d.mu.Unlock()
		if err != nil {
			if permanent(err) {
				d.tagError(tag, err)
				return nil
			}
			return fmt.Errorf("describe %s: %w", tag, err)
		}
		digests[i] = digest
		d.prog.found(1)
		td := tagDigest{Digest: digest, Checked: known.Checked}
		if checked {
			td.Checked = timeNow().Unix()
		}
		rec.Digests[tag] = td
		if desc != nil {
			if d.descs == nil {
				d.descs = map[string]*remote.Descriptor{}
			}
			d.descs[digest] = desc
		}
		if !needsTime(tag) {
			img := Image{Digest: digest}
			if desc != nil {
				img.MediaType = string(desc.MediaType)
			}
			res.Images[tag] = img
			d.prog.add(1)
		}
		return nil
	})
	if err != nil || !need.BuildTime {
		return rec, d.metas, err
	}

	// Pass 2: the metadata of each distinct digest not described before.
	byDigest := map[string][]string{}
	for i, tag := range todo {
		if digests[i] != "" && needsTime(tag) {
			byDigest[digests[i]] = append(byDigest[digests[i]], tag)
		}
	}
	var unknown []string
	for digest, tags := range byDigest {
		if m, ok := d.cachedMeta(digest); ok {
			res.MetaHits += len(tags)
			s.opts.Metrics.cacheLookup("metadata", true)
			if m.Err != "" { // described before: content that cannot be used
				err := fmt.Errorf("describe %s@%s: %w", tags[0], digest, &cachedError{msg: m.Err, notFound: m.NotFound})
				for _, t := range tags {
					d.tagError(t, err)
				}
				continue
			}
			d.set(tags, Image{Digest: digest, Created: unixNano(m.Created), MediaType: m.MediaType})
			continue
		}
		res.MetaMiss += len(tags)
		s.opts.Metrics.cacheLookup("metadata", false)
		unknown = append(unknown, digest)
	}
	slices.Sort(unknown)
	var paused error // the first pull budget pause
	err = parallel(ctx, s.opts.Concurrency, len(unknown), func(ctx context.Context, i int) error {
		digest := unknown[i]
		d.mu.Lock()
		desc, stop := d.descs[digest], paused != nil
		d.mu.Unlock()
		if stop {
			return nil
		}
		img, meta, err := d.describe(ctx, digest, desc)
		d.mu.Lock()
		defer d.mu.Unlock()
		tags := byDigest[digest]
		if err != nil {
			err = fmt.Errorf("describe %s@%s: %w", tags[0], digest, err)
			var ce *contentError
			switch {
			case permanent(err):
				if errors.As(err, &ce) {
					d.metas[ce.key] = metaRecord{key: ce.key, Err: ce.Error(), NotFound: errors.Is(ce, ErrNotFound)}
				}
				for _, t := range tags {
					d.tagError(t, err)
				}
				return nil
			case errors.Is(err, ErrPullBudget):
				// Not a failure to cancel the others for: those in flight have spent
				// their pull already, and finish describing (and caching) their image.
				if paused == nil {
					paused = err
				}
				return nil
			}
			return err
		}
		d.metas[meta.key] = *meta
		d.set(tags, img)
		return nil
	})
	if err == nil {
		err = paused
	}
	return rec, d.metas, err
}

// parallel runs fn for 0..n-1 on at most workers goroutines (errgroup): the first error
// cancels the rest (fn sees the cancelled context) and is returned once all have ended; so
// is the end of ctx.
func parallel(ctx context.Context, workers, n int, fn func(context.Context, int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, workers))
	for i := 0; i < n && gctx.Err() == nil; i++ {
		g.Go(func() error { return fn(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// describer describes the tags of one repository through one session.
type describer struct {
	s    *Scanner
	repo name.Repository
	opts []remote.Option
	prog progress

	mu    sync.Mutex // guards the fields below
	res   *Result
	rec   *repoRecord
	metas map[string]metaRecord
	descs map[string]*remote.Descriptor // manifests read while finding a digest
}

// set records img for tags (d.mu held).
func (d *describer) set(tags []string, img Image) {
	for _, t := range tags {
		d.res.Images[t] = img
	}
	d.prog.add(len(tags))
}

// tagError records a tag that cannot be described (d.mu held).
func (d *describer) tagError(tag string, err error) {
	if _, ok := d.rec.Digests[tag]; !ok {
		d.prog.found(1)
	}
	if d.res.TagErrors == nil {
		d.res.TagErrors = map[string]error{}
	}
	d.res.TagErrors[tag] = err
	d.prog.add(1)
}

// digest finds tag's digest: the cache's unless tracked or stale, else with a HEAD (a GET
// where the registry's HEAD gives no digest). checked reports that the registry confirmed
// it during this call; desc is the manifest when a GET read it.
func (d *describer) digest(ctx context.Context, tag string, known tagDigest, hasKnown, tracked bool) (
	digest string, desc *remote.Descriptor, checked bool, err error) {
	s := d.s
	fresh := hasKnown && (s.opts.DigestRecheck < 0 || timeNow().Unix()-known.Checked < int64(s.opts.DigestRecheck/time.Second))
	if fresh && !tracked {
		s.opts.Metrics.cacheLookup("digest", true)
		return known.Digest, nil, false, nil
	}
	s.opts.Metrics.cacheLookup("digest", false)
	// A tag listed a moment ago may not be readable yet: the distribution registry sends
	// its push notification before it writes the tag's link. So a 404 by tag is tried
	// again, after 25, 50, 100 and 200ms.
	for try := 0; ; try++ {
		digest, desc, err = d.head(ctx, tag)
		if try == 4 || !errors.Is(err, ErrNotFound) {
			break
		}
		if serr := sleep(ctx, (25*time.Millisecond)<<try); serr != nil {
			return "", nil, false, serr
		}
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("manifest %s: %w", tag, err)
	}
	return digest, desc, true, nil
}

// head returns a tag's digest from a HEAD's Docker-Content-Digest or, when the registry
// does not send one (or refuses HEAD), from a GET.
func (d *describer) head(ctx context.Context, tag string) (string, *remote.Descriptor, error) {
	ref := d.repo.Tag(tag)
	h, err := remote.Head(ref, d.with(ctx)...)
	if err == nil {
		return h.Digest.String(), nil, nil
	}
	var te *transport.Error
	if !strings.Contains(err.Error(), "did not include") && !(errors.As(err, &te) && te.StatusCode == http.StatusMethodNotAllowed) {
		return "", nil, remoteError(err)
	}
	desc, err := remote.Get(ref, d.with(ctx)...)
	if err != nil {
		return "", nil, remoteError(err)
	}
	return desc.Digest.String(), desc, nil
}

// with is the session's options for one call under ctx.
func (d *describer) with(ctx context.Context) []remote.Option {
	return append(slices.Clip(d.opts), remote.WithContext(ctx))
}

// describe reads a digest's build time: GET its manifest (unless desc has it), for an index
// the platform's manifest, then the config blob (following the registry's redirect to its
// storage).
func (d *describer) describe(ctx context.Context, digest string, desc *remote.Descriptor) (Image, *metaRecord, error) {
	var err error
	if desc == nil {
		if desc, err = remote.Get(d.repo.Digest(digest), d.with(ctx)...); err != nil {
			return Image{}, nil, fmt.Errorf("manifest: %w", remoteError(err))
		}
	}
	mediaType := string(desc.MediaType)
	m, err := parseManifest(desc.Manifest, digest)
	if err != nil {
		return Image{}, nil, content(err, digest)
	}
	index := m.Config == nil && len(m.Manifests) > 0
	imgDesc := desc
	if index {
		child := ""
		for _, c := range m.Manifests {
			if c.Platform != nil && c.Platform.Satisfies(d.s.opts.Platform) {
				child = c.Digest.String()
				break
			}
		}
		if child == "" {
			return Image{}, nil, content(fmt.Errorf("%w: index has no %s image", ErrNotFound, d.s.platform), d.s.metaKey(digest, true))
		}
		if imgDesc, err = remote.Get(d.repo.Digest(child), d.with(ctx)...); err != nil {
			return Image{}, nil, fmt.Errorf("platform manifest %s: %w", child, remoteError(err))
		}
		if m, err = parseManifest(imgDesc.Manifest, child); err != nil {
			return Image{}, nil, content(err, d.s.metaKey(digest, true))
		}
	}
	if m.Config == nil || m.Config.Digest == "" {
		return Image{}, nil, content(badResponse("manifest %s has no config (schema 1 manifests are not supported)", imgDesc.Digest), d.s.metaKey(digest, index))
	}
	if m.Config.Size > maxConfigBytes {
		return Image{}, nil, content(badResponse("config %s of %d bytes, more than %d", m.Config.Digest, m.Config.Size, maxConfigBytes), d.s.metaKey(digest, index))
	}
	img, err := imgDesc.Image()
	if err != nil {
		return Image{}, nil, content(badResponse("manifest %s: %v", imgDesc.Digest, err), d.s.metaKey(digest, index))
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return Image{}, nil, fmt.Errorf("config %s: %w", m.Config.Digest, remoteError(err))
	}
	var c struct {
		Created *time.Time `json:"created"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return Image{}, nil, content(badResponse("config %s is not valid JSON", m.Config.Digest), d.s.metaKey(digest, index))
	}
	var created time.Time
	var nano int64
	if c.Created != nil {
		created, nano = c.Created.UTC(), c.Created.UnixNano()
	}
	return Image{Digest: digest, Created: created, MediaType: mediaType},
		&metaRecord{key: d.s.metaKey(digest, index), Created: nano, MediaType: mediaType}, nil
}

// contentError is a failure to describe an image that its content decides (a manifest that
// does not parse, an index without the platform's image, a config that is not JSON): content
// behind a digest never changes, so it is cached under key like metadata, and the image is
// not fetched again (one pull per image, ever, on Docker Hub too). A failure to fetch (a 404
// blob, a digest mismatch) is not: it may heal.
type contentError struct {
	err error
	key string
}

func (e *contentError) Error() string { return e.err.Error() }
func (e *contentError) Unwrap() error { return e.err }

func content(err error, key string) error { return &contentError{err: err, key: key} }

// cachedError is a contentError read back from the cache.
type cachedError struct {
	msg      string
	notFound bool
}

func (e *cachedError) Error() string { return e.msg }
func (e *cachedError) Is(target error) bool {
	return target == ErrBadResponse && !e.notFound || target == ErrNotFound && e.notFound
}

// manifestDoc is the union of an image manifest and an index, as far as we read them.
type manifestDoc struct {
	Config *struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"config"`
	Manifests []v1.Descriptor `json:"manifests"`
}

func parseManifest(body []byte, digest string) (manifestDoc, error) {
	var m manifestDoc
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&m); err != nil {
		return m, badResponse("manifest %s is not valid JSON", digest)
	}
	return m, nil
}

// remoteError reduces an error from go-containerregistry's remote to the package's own:
// ours from the transport underneath, a registry status (its code, not its free text), a
// refused redirect, or a bad response; never a URL (a storage redirect's carries a
// signature).
func remoteError(err error) error {
	var (
		te *transport.Error
		ue *url.Error
	)
	switch {
	case err == nil:
		return nil
	case ours(err) != nil:
		return ours(err)
	case errors.Is(err, context.Canceled):
		return context.Canceled // not the url.Error around it, which quotes the URL
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.Is(err, ErrBadResponse):
		return err
	case errors.As(err, &te):
		return fromTransport(te)
	case errors.As(err, &ue):
		// What the HTTP client itself refused: a redirect to a private address, a loop,
		// a scheme it cannot follow; else a failure of the connection (a certificate, a
		// name that does not resolve), without the URL.
		if msg := ue.Err.Error(); strings.Contains(msg, "redirect") || strings.Contains(msg, "unsupported protocol scheme") {
			return &redirectError{msg: "redirect refused: " + msg}
		}
		return ue.Err
	}
	return badResponse("%v", err)
}

// ours returns the error of this package's transport inside err (a budget pause, a request
// that kept failing, a registry status, a network failure, a redirect refused), or nil.
func ours(err error) error {
	var (
		be *BudgetError
		ae *attemptsError
		se *StatusError
		ne *netError
		re *redirectError
	)
	switch {
	case errors.As(err, &re):
		return re // not the url.Error around it, which quotes the (signed) URL
	case errors.As(err, &be):
		return be
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &se):
		return se
	case errors.As(err, &ne):
		return ne
	}
	return nil
}

// metaKey is where a digest's metadata is cached: an index's build time is its platform
// image's, so it is kept per platform ("DIGEST@linux/arm64"); an image's under its digest.
func (s *Scanner) metaKey(digest string, index bool) string {
	if index {
		return digest + "@" + s.platform
	}
	return digest
}

// cachedMeta looks digest's metadata up: an index's for this scanner's platform, else an
// image's. A record under the bare digest with an index media type was written before
// indexes were kept per platform and may be another platform's: it is not used.
func (d *describer) cachedMeta(digest string) (metaRecord, bool) {
	if m, ok, _ := d.s.store.meta(d.s.metaKey(digest, true)); ok {
		return m, true
	}
	m, ok, _ := d.s.store.meta(digest)
	if !ok || isIndex(m.MediaType) {
		return metaRecord{}, false
	}
	return m, true
}

func isIndex(mediaType string) bool {
	mt := types.MediaType(mediaType)
	return mt == types.OCIImageIndex || mt == types.DockerManifestList
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// progress reports a scan's described tags to Need.Progress and the metrics.
type progress struct {
	host    string
	total   int
	report  func(Progress)
	metrics *Metrics

	done, digests int // guarded by the describer's mu
}

func (p *progress) start() {
	p.metrics.progress(p.host, 0, p.total)
	if p.report != nil {
		p.report(Progress{Total: p.total})
	}
}

func (p *progress) add(n int) {
	p.done += n
	p.metrics.progress(p.host, n, -n)
	p.tell()
}

func (p *progress) found(n int) {
	p.digests += n
	p.tell()
}

func (p *progress) tell() {
	if p.report != nil {
		p.report(Progress{Described: p.done, Total: p.total, Digests: p.digests})
	}
}

// end takes what was left undescribed off the pending gauge.
func (p *progress) end() {
	p.metrics.progress(p.host, 0, -(p.total - p.done))
}
