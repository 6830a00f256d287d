package scan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var timeNow = time.Now

const (
	maxManifestBytes = 4 << 20
	maxConfigBytes   = 16 << 20
)

var manifestAccept = "application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, " +
	"application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json"

// describeAll describes the tags need selects, concurrently, into res; it returns the
// repository's new cache record and the metadata learnt.
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
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu    sync.Mutex
		metas = map[string]metaRecord{}
		sem   = make(chan struct{}, s.opts.Concurrency)
		wg    sync.WaitGroup
	)
	for _, tag := range todo {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			mu.Lock()
			known, hasKnown := rec.Digests[tag]
			mu.Unlock()
			d := describer{s: s, rt: rt, repo: repo}
			img, meta, checked, err := d.describe(ctx, tag, known, hasKnown, tracked[tag], need.BuildTime)
			mu.Lock()
			defer mu.Unlock()
			res.MetaHits += d.hits
			res.MetaMiss += d.misses
			if err != nil {
				if permanent(err) {
					if res.TagErrors == nil {
						res.TagErrors = map[string]error{}
					}
					res.TagErrors[tag] = err
					return
				}
				cancel(fmt.Errorf("describe %s: %w", tag, err))
				return
			}
			res.Images[tag] = img
			td := tagDigest{Digest: img.Digest, Checked: known.Checked}
			if checked {
				td.Checked = timeNow().Unix()
			}
			rec.Digests[tag] = td
			if meta != nil {
				metas[meta.key] = *meta
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, nil, err
	}
	return rec, metas, nil
}

// describer describes the tags of one repository through one session.
type describer struct {
	s            *Scanner
	rt           http.RoundTripper
	repo         name.Repository
	hits, misses int
}

// describe finds tag's digest (from the cache unless tracked or stale, else with HEAD, or
// with the GET that reads the manifest when the build time is needed) and, when needed, its
// build time (from the cache by digest, else manifest → [platform manifest] → config).
// checked reports that the registry confirmed the digest during this call; meta is set when
// the metadata was fetched (to be cached).
func (d *describer) describe(ctx context.Context, tag string, known tagDigest, hasKnown, tracked, buildTime bool) (
	img Image, meta *metaRecord, checked bool, err error) {
	s := d.s
	digest := ""
	fresh := hasKnown && (s.opts.DigestRecheck < 0 || timeNow().Unix()-known.Checked < int64(s.opts.DigestRecheck/time.Second))
	if fresh && !tracked {
		digest = known.Digest
		s.opts.Metrics.cacheLookup("digest", true)
	} else {
		s.opts.Metrics.cacheLookup("digest", false)
	}
	var body []byte
	var mediaType string
	if digest == "" {
		// A tag listed a moment ago may not be readable yet: the distribution registry
		// sends its push notification before it writes the tag's link. So a 404 by tag is
		// tried again, after 25, 50, 100 and 200ms.
		for try := 0; ; try++ {
			if !buildTime || tracked || hasKnown {
				digest, err = d.head(ctx, tag)
			} else {
				body, mediaType, digest, err = d.manifest(ctx, tag, "")
			}
			if try == 4 || !errors.Is(err, ErrNotFound) {
				break
			}
			if serr := sleep(ctx, (25*time.Millisecond)<<try); serr != nil {
				return Image{}, nil, false, serr
			}
		}
		if err != nil {
			return Image{}, nil, false, fmt.Errorf("manifest %s: %w", tag, err)
		}
		checked = true
	}
	img = Image{Digest: digest, MediaType: mediaType}
	if !buildTime {
		return img, nil, checked, nil
	}
	if m, ok := d.cachedMeta(digest); ok {
		d.hits++
		s.opts.Metrics.cacheLookup("metadata", true)
		img.Created, img.MediaType = unixNano(m.Created), m.MediaType
		return img, nil, checked, nil
	}
	d.misses++
	s.opts.Metrics.cacheLookup("metadata", false)
	if body == nil {
		if body, mediaType, _, err = d.manifest(ctx, "", digest); err != nil {
			return Image{}, nil, checked, fmt.Errorf("manifest %s@%s: %w", tag, digest, err)
		}
	}
	created, index, err := d.created(ctx, body, digest)
	if err != nil {
		return Image{}, nil, checked, fmt.Errorf("%s@%s: %w", tag, digest, err)
	}
	img.Created, img.MediaType = created, mediaType
	var c int64
	if !created.IsZero() {
		c = created.UnixNano()
	}
	return img, &metaRecord{key: s.metaKey(digest, index), Created: c, MediaType: mediaType}, checked, nil
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

// manifestDoc is the union of an image manifest and an index, as far as we read them.
type manifestDoc struct {
	MediaType string `json:"mediaType"`
	Config    *struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Manifests []v1.Descriptor `json:"manifests"`
}

// created reads the build time from a manifest or index body; index reports that it was
// an index (whose build time is Options.Platform's image's).
func (d *describer) created(ctx context.Context, body []byte, digest string) (_ time.Time, index bool, err error) {
	var m manifestDoc
	if err := json.Unmarshal(body, &m); err != nil {
		return time.Time{}, false, badResponse("manifest is not valid JSON")
	}
	index = m.Config == nil && len(m.Manifests) > 0
	t, err := d.configCreated(ctx, m, digest)
	return t, index, err
}

func (d *describer) configCreated(ctx context.Context, m manifestDoc, digest string) (time.Time, error) {
	if m.Config == nil && len(m.Manifests) > 0 { // an index: the configured platform's image
		child := ""
		for _, desc := range m.Manifests {
			if desc.Platform != nil && desc.Platform.Satisfies(d.s.opts.Platform) {
				child = desc.Digest.String()
				break
			}
		}
		if child == "" {
			return time.Time{}, fmt.Errorf("%w: index has no %s image", ErrNotFound, d.s.platform)
		}
		cb, _, _, err := d.manifest(ctx, "", child)
		if err != nil {
			return time.Time{}, fmt.Errorf("platform manifest %s: %w", child, err)
		}
		m = manifestDoc{}
		if err := json.Unmarshal(cb, &m); err != nil {
			return time.Time{}, badResponse("platform manifest %s is not valid JSON", child)
		}
		digest = child
	}
	if m.Config == nil || m.Config.Digest == "" {
		return time.Time{}, badResponse("manifest %s has no config (schema 1 manifests are not supported)", digest)
	}
	cfg, err := d.get(ctx, "blobs", m.Config.Digest, "", maxConfigBytes)
	if err != nil {
		return time.Time{}, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	var c struct {
		Created *time.Time `json:"created"`
	}
	if err := json.Unmarshal(cfg.body, &c); err != nil {
		return time.Time{}, badResponse("config %s is not valid JSON", m.Config.Digest)
	}
	if c.Created == nil {
		return time.Time{}, nil
	}
	return c.Created.UTC(), nil
}

// head returns a tag's digest from the Docker-Content-Digest of a HEAD (or, when the
// registry does not send it, of a GET).
func (d *describer) head(ctx context.Context, tag string) (string, error) {
	r, err := d.do(ctx, http.MethodHead, "manifests", tag, manifestAccept, 0)
	if err != nil {
		return "", err
	}
	if h := r.header.Get("Docker-Content-Digest"); h != "" {
		if _, err := v1.NewHash(h); err != nil {
			return "", badResponse("invalid Docker-Content-Digest")
		}
		return h, nil
	}
	_, _, digest, err := d.manifest(ctx, tag, "")
	return digest, err
}

// manifest GETs a manifest by tag or by digest, checks its digest and returns its body,
// media type and digest.
func (d *describer) manifest(ctx context.Context, tag, digest string) ([]byte, string, string, error) {
	ref := tag
	if digest != "" {
		ref = digest
	}
	r, err := d.get(ctx, "manifests", ref, digest, maxManifestBytes)
	if err != nil {
		return nil, "", "", err
	}
	got := r.digest
	if h := r.header.Get("Docker-Content-Digest"); h != "" && h != got {
		return nil, "", "", badResponse("manifest digest %s does not match Docker-Content-Digest %s", got, h)
	}
	return r.body, r.header.Get("Content-Type"), got, nil
}

type fetched struct {
	body   []byte
	digest string
	header http.Header
}

// get GETs /v2/REPO/KIND/REF and checks the content against want (a digest, "" for none).
func (d *describer) get(ctx context.Context, kind, ref, want string, limit int64) (*fetched, error) {
	accept := manifestAccept
	if kind == "blobs" {
		accept = "*/*"
		want = ref
	}
	return d.do(ctx, http.MethodGet, kind, ref, accept, limit, want)
}

func (d *describer) do(ctx context.Context, method, kind, ref, accept string, limit int64, want ...string) (*fetched, error) {
	u := &url.URL{Scheme: d.repo.Scheme(), Host: d.repo.RegistryStr(), Path: "/v2/" + d.repo.RepositoryStr() + "/" + kind + "/" + ref}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := d.rt.RoundTrip(req)
	if err != nil {
		return nil, cleanAuthError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	f := &fetched{header: resp.Header}
	if method == http.MethodHead {
		return f, nil
	}
	h := sha256.New()
	f.body, err = io.ReadAll(io.TeeReader(io.LimitReader(resp.Body, limit+1), h))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, cleanNetError(err, d.s.opts.RequestTimeout)
	}
	if int64(len(f.body)) > limit {
		return nil, badResponse("%s %s larger than %d bytes", kind, ref, limit)
	}
	f.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	if len(want) > 0 && want[0] != "" && want[0] != f.digest {
		return nil, badResponse("content of %s has digest %s", want[0], f.digest)
	}
	return f, nil
}
