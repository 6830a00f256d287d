package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// validTag is the distribution spec's tag grammar.
var validTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// list reads every page of repo's tag list, following Link headers on the same host.
func (s *Scanner) list(ctx context.Context, rt http.RoundTripper, repo name.Repository, tagCap int) ([]string, error) {
	if tagCap <= 0 {
		tagCap = s.opts.TagCap
	}
	host := repo.RegistryStr()
	u := &url.URL{Scheme: repo.Scheme(), Host: host, Path: "/v2/" + repo.RepositoryStr() + "/tags/list"}
	if n := s.pageSize(host); n > 0 {
		u.RawQuery = "n=" + strconv.Itoa(n)
	}
	// Every page brings at least one new tag or is the last, so pages are bounded by the cap.
	maxPages := tagCap + 1
	seen := map[string]bool{}
	var tags []string
	size := 0
	for page := 0; ; page++ {
		if page >= maxPages {
			return nil, badResponse("more than %d pages", maxPages)
		}
		if seen[u.String()] {
			return nil, badResponse("Link header loops back to %s", u.RequestURI())
		}
		seen[u.String()] = true
		pageTags, next, err := s.listPage(ctx, rt, u, tagCap-len(tags))
		if err != nil {
			if errors.Is(err, ErrTagCap) {
				s.opts.Metrics.listed(host, 0, true)
				return nil, fmt.Errorf("%w: more than %d tags", ErrTagCap, tagCap)
			}
			return nil, err
		}
		for _, t := range pageTags {
			if !validTag.MatchString(t) {
				return nil, badResponse("invalid tag name %q", truncate(t, 64))
			}
			size += len(t)
		}
		tags = append(tags, pageTags...)
		if next == "" {
			break
		}
		nu, err := u.Parse(next)
		if err != nil {
			return nil, badResponse("unparsable Link header")
		}
		if nu.Host != u.Host {
			return nil, badResponse("Link header leads to another host %q", nu.Host)
		}
		nu.Scheme = u.Scheme
		if len(pageTags) == 0 {
			return nil, badResponse("empty page with a next Link")
		}
		u = nu
	}
	slices.Sort(tags)
	tags = slices.Compact(tags)
	s.opts.Metrics.listed(host, len(tags), false)
	return pack(tags, size), nil
}

// listPage GETs one page. room is how many more tags fit under the cap.
func (s *Scanner) listPage(ctx context.Context, rt http.RoundTripper, u *url.URL, room int) ([]string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", cleanAuthError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", statusError(resp)
	}
	// A tag is at most 128 bytes, 131 with quotes and comma: a body larger than room
	// tags can hold is over the cap.
	limit := int64(room)*131 + 4096
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", cleanNetError(err, s.opts.RequestTimeout)
	}
	if int64(len(body)) > limit {
		return nil, "", ErrTagCap
	}
	var doc struct {
		Tags json.RawMessage `json:"tags"`
	}
	var tags []string
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, "", badResponse("tag list is not valid JSON")
	}
	if doc.Tags == nil {
		return nil, "", badResponse(`tag list has no "tags"`)
	}
	if err := json.Unmarshal(doc.Tags, &tags); err != nil {
		return nil, "", badResponse(`"tags" is not a list of strings`)
	}
	if len(tags) > room {
		return nil, "", ErrTagCap
	}
	return tags, nextLink(resp.Header.Values("Link")), nil
}

// nextLink finds the rel="next" target in Link headers: `</v2/x/tags/list?last=a&n=2>;
// rel="next"`.
func nextLink(values []string) string {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			target, params, ok := strings.Cut(part, ";")
			if !ok {
				continue
			}
			target = strings.TrimSpace(target)
			if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			for _, p := range strings.Split(params, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "rel") && strings.Contains(strings.ToLower(strings.Trim(v, `"`)), "next") {
					return target[1 : len(target)-1]
				}
			}
		}
	}
	return ""
}

// statusError reads a registry error body into a StatusError (its code only: free text
// may quote the request).
func statusError(resp *http.Response) error {
	se := &StatusError{StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), timeNow())}
	var doc struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(body, &doc) == nil && len(doc.Errors) > 0 && validCode(doc.Errors[0].Code) {
		se.Code = doc.Errors[0].Code
	}
	return se
}

func validCode(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for _, r := range c {
		if !(r >= 'A' && r <= 'Z' || r == '_') {
			return false
		}
	}
	return true
}

// pack copies tags into one backing string: a listing of 1,000 tags is one allocation of
// their bytes instead of 1,000.
func pack(tags []string, size int) []string {
	var b strings.Builder
	b.Grow(size)
	for _, t := range tags {
		b.WriteString(t)
	}
	all := b.String()
	out := make([]string, len(tags))
	off := 0
	for i, t := range tags {
		out[i] = all[off : off+len(t)]
		off += len(t)
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
