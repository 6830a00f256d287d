package testenv

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// cdnURLTTL is how long a redirect's signed URL stays valid.
const cdnURLTTL = 10 * time.Minute

// redirectKey marks, in a request's context, a blob GET that the blob store answers with a
// redirect to the CDN (requests to the private listener do not carry it).
type redirectKey struct{}

// profileBlobs keeps blobs in memory for the registry (a registry.BlobHandler) and the CDN.
type profileBlobs struct {
	p  *ProfileRegistry
	mu sync.Mutex
	m  map[string][]byte // digest -> contents
}

func (b *profileBlobs) get(h v1.Hash) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.m[h.String()]
	return data, ok
}

// Stat implements registry.BlobStatHandler.
func (b *profileBlobs) Stat(ctx context.Context, _ string, h v1.Hash) (int64, error) {
	data, ok := b.get(h)
	if !ok {
		return 0, registry.ErrNotFound
	}
	if ctx.Value(redirectKey{}) != nil {
		return 0, b.redirect(h)
	}
	return int64(len(data)), nil
}

// Get implements registry.BlobHandler.
func (b *profileBlobs) Get(ctx context.Context, _ string, h v1.Hash) (io.ReadCloser, error) {
	data, ok := b.get(h)
	if !ok {
		return nil, registry.ErrNotFound
	}
	if ctx.Value(redirectKey{}) != nil {
		return nil, b.redirect(h)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (b *profileBlobs) redirect(h v1.Hash) error {
	return registry.RedirectError{Location: b.p.cdnURL(h, time.Now().Add(cdnURLTTL)), Code: http.StatusTemporaryRedirect}
}

// Put implements registry.BlobPutHandler.
func (b *profileBlobs) Put(_ context.Context, _ string, h v1.Hash, rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("storing blob %s: %w", h, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[h.String()] = data
	return nil
}

// Delete implements registry.BlobDeleteHandler.
func (b *profileBlobs) Delete(_ context.Context, _ string, h v1.Hash) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[h.String()]; !ok {
		return registry.ErrNotFound
	}
	delete(b.m, h.String())
	return nil
}

// cdnURL is the signed CDN URL of blob h, valid until expires.
func (p *ProfileRegistry) cdnURL(h v1.Hash, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return fmt.Sprintf("http://%s/blob/%s?expires=%s&sig=%s", p.CDN, h, exp, p.cdnSig(h.String(), exp))
}

func (p *ProfileRegistry) cdnSig(digest, expires string) string {
	return hex.EncodeToString(p.mac("cdn", []byte(digest+"\n"+expires)))
}

// serveCDN is the object store behind the blob redirects: GET /blob/DIGEST?expires=&sig=.
// Like S3 with a pre-signed URL it refuses a second auth mechanism (an Authorization header)
// and a wrong or expired signature, with an S3 XML error.
func (p *ProfileRegistry) serveCDN(w http.ResponseWriter, r *http.Request) {
	withAuth := r.Header.Get("Authorization") != ""
	p.count(func(c *ProfileCounts) {
		c.CDNGETs++
		if withAuth {
			c.CDNWithAuthorization++
		}
	})
	refuse := func(status int, code, message string) {
		p.count(func(c *ProfileCounts) { c.CDNRefused++ })
		writeS3Error(w, status, code, message)
	}
	q := r.URL.Query()
	exp, sig := q.Get("expires"), q.Get("sig")
	digest, _ := strings.CutPrefix(r.URL.Path, "/blob/")
	switch {
	case withAuth:
		refuse(http.StatusBadRequest, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
		return
	case !hmac.Equal([]byte(sig), []byte(p.cdnSig(digest, exp))):
		refuse(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	if unix, err := strconv.ParseInt(exp, 10, 64); err != nil || !time.Now().Before(time.Unix(unix, 0)) {
		refuse(http.StatusForbidden, "AccessDenied", "Request has expired")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeS3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
		return
	}
	h, err := v1.NewHash(digest)
	var data []byte
	ok := err == nil
	if ok {
		data, ok = p.blobs.get(h)
	}
	if !ok {
		writeS3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", strconv.Quote(h.Hex))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

func writeS3Error(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message><RequestId>%s</RequestId></Error>\n",
		code, message, randomHex(8))
}
