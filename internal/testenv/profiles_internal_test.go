package testenv

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestProfileCDNExpiredURL checks that the CDN refuses a correctly signed URL past its expiry.
func TestProfileCDNExpiredURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := StartProfileRegistry(ctx, ProfileOptions{Profile: ProfileGHCR})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Push(ctx, "team/app", "v1", ImageSpec{}); err != nil {
		t.Fatal(err)
	}
	var blob v1.Hash
	p.blobs.mu.Lock()
	for d := range p.blobs.m {
		blob, err = v1.NewHash(d)
		break
	}
	p.blobs.mu.Unlock()
	if err != nil || blob.Hex == "" {
		t.Fatalf("no blob stored: %v", err)
	}
	get := func(u string) (int, string) {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(p.cdnURL(blob, time.Now().Add(-time.Second))); code != http.StatusForbidden || !strings.Contains(body, "Request has expired") {
		t.Errorf("an expired URL: %d %s, want 403 Request has expired", code, body)
	}
	if code, _ := get(p.cdnURL(blob, time.Now().Add(time.Minute))); code != http.StatusOK {
		t.Errorf("an unexpired URL: %d, want 200", code)
	}
	if c := p.Counts(); c.CDNGETs != 2 || c.CDNRefused != 1 {
		t.Errorf("CDN GETs %d, refused %d; want 2, 1", c.CDNGETs, c.CDNRefused)
	}
}
