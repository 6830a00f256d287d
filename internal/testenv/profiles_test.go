package testenv_test

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
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"imagebot.dev/imagebot/internal/testenv"
)

func startProfile(t *testing.T, opts testenv.ProfileOptions) (*testenv.ProfileRegistry, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	p, err := testenv.StartProfileRegistry(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, ctx
}

// answer is a response with its body read.
type answer struct {
	*http.Response
	body string
}

// rawDo makes one request without following redirects; auth is a whole Authorization value.
func rawDo(t *testing.T, method, rawURL, auth string) answer {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json")
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, rawURL, err)
	}
	return answer{resp, string(b)}
}

// token asks p's token server for scope, anonymously when user is "".
func token(t *testing.T, p *testenv.ProfileRegistry, scope, user, pass string) string {
	t.Helper()
	u := p.Realm + "?scope=" + url.QueryEscape(scope)
	auth := ""
	if user != "" {
		auth = "Basic " + basicValue(user, pass)
	}
	a := rawDo(t, http.MethodGet, u, auth)
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		IssuedAt    string `json:"issued_at"`
	}
	if a.StatusCode != http.StatusOK || json.Unmarshal([]byte(a.body), &tok) != nil || tok.Token == "" {
		t.Fatalf("token for %s: %s %s", scope, a.Status, a.body)
	}
	if tok.AccessToken != tok.Token || tok.ExpiresIn != 300 || tok.IssuedAt == "" {
		t.Errorf("token JSON unlike Docker Hub's: %s", a.body)
	}
	return "Bearer " + tok.Token
}

func basicValue(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func statusOf(err error) int {
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode
	}
	return 0
}

func mustRef(t *testing.T, p *testenv.ProfileRegistry, repo, tag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(p.Host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestProfilePull pulls an image, its config and layer through each profile's auth and blob
// redirects with go-containerregistry, as a scanner does, and checks what was counted.
func TestProfilePull(t *testing.T) {
	for _, prof := range []testenv.Profile{testenv.ProfileDockerHub, testenv.ProfileGHCR, testenv.ProfileQuay, testenv.ProfileECR} {
		t.Run(string(prof), func(t *testing.T) {
			p, ctx := startProfile(t, testenv.ProfileOptions{Profile: prof})
			created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
			digest, err := p.Push(ctx, "team/app", "v1", testenv.ImageSpec{Created: created})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Tag(ctx, "team/app", digest, "latest"); err != nil {
				t.Fatal(err)
			}
			if c := p.Counts(); c.Requests != 0 {
				t.Errorf("Push and Tag were counted: %+v", c)
			}
			realmOK := map[testenv.Profile]bool{
				testenv.ProfileDockerHub: strings.HasPrefix(p.Realm, "http://localhost:"), // another host
				testenv.ProfileGHCR:      p.Realm == "http://"+p.Host+"/token",
				testenv.ProfileQuay:      p.Realm == "http://"+p.Host+"/token",
				testenv.ProfileECR:       p.Realm == "",
			}[prof]
			if !realmOK {
				t.Errorf("realm %q", p.Realm)
			}
			auth := authn.Anonymous
			if prof == testenv.ProfileECR {
				auth = p.Auth()
			}
			opts := []remote.Option{remote.WithAuth(auth), remote.WithContext(ctx)}
			ref := mustRef(t, p, "team/app", "v1")
			desc, err := remote.Get(ref, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest != digest {
				t.Errorf("digest %s, pushed %s", desc.Digest, digest)
			}
			img, err := desc.Image()
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile() // a blob GET through the redirect
			if err != nil {
				t.Fatal(err)
			}
			if !cf.Created.Time.Equal(created) {
				t.Errorf("config created %s, want %s", cf.Created.Time, created)
			}
			layers, err := img.Layers()
			if err != nil || len(layers) != 1 {
				t.Fatalf("layers %d: %v", len(layers), err)
			}
			rc, err := layers[0].Compressed()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil { // checks the digest at EOF
				t.Fatalf("reading the layer from the CDN: %v", err)
			}
			rc.Close()
			tags, err := remote.List(ref.Context(), append(opts, remote.WithPageSize(100))...)
			if err != nil || !slices.Equal(tags, []string{"latest", "v1"}) {
				t.Errorf("tags %v: %v", tags, err)
			}

			c := p.Counts()
			if c.ManifestGETs != 1 || c.Pulls != 1 || c.ManifestHEADs != 0 {
				t.Errorf("manifest GETs %d, pulls %d, HEADs %d; want 1, 1, 0", c.ManifestGETs, c.Pulls, c.ManifestHEADs)
			}
			if c.BlobGETs != 2 || c.CDNGETs != 2 || c.CDNWithAuthorization != 0 || c.CDNRefused != 0 {
				t.Errorf("blob GETs %d, CDN GETs %d (with Authorization %d, refused %d); want 2, 2 (0, 0)",
					c.BlobGETs, c.CDNGETs, c.CDNWithAuthorization, c.CDNRefused)
			}
			wantTokens := 2 // one per remote call: Get, List
			if prof == testenv.ProfileECR {
				wantTokens = 0
			}
			if c.TokenRequests != wantTokens || c.TagListGETs != 1 || c.Unauthorized != 2 || c.RateLimited != 0 {
				t.Errorf("token requests %d (want %d), tag lists %d (want 1), 401s %d (want 2: the pings), 429s %d",
					c.TokenRequests, wantTokens, c.TagListGETs, c.Unauthorized, c.RateLimited)
			}
			// 2 pings, the tokens, a manifest, 2 blobs, a tag list and 2 CDN GETs.
			if want := 8 + wantTokens; c.Requests != want {
				t.Errorf("requests %d, want %d", c.Requests, want)
			}
			p.ResetCounts()
			if p.Counts() != (testenv.ProfileCounts{}) {
				t.Error("ResetCounts kept counts")
			}
		})
	}
}

// TestProfileCDN checks Docker Hub's challenge names a realm on another host, that a blob GET
// redirects to a signed URL on the CDN, and that the CDN refuses an Authorization header and
// a tampered URL.
func TestProfileCDN(t *testing.T) {
	p, ctx := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileDockerHub})
	if _, err := p.Push(ctx, "library/app", "v1", testenv.ImageSpec{}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + p.Host + "/v2/library/app"
	a := rawDo(t, http.MethodGet, base+"/manifests/v1", "")
	wantChallenge := fmt.Sprintf(`Bearer realm=%q,service="registry.docker.io",scope="repository:library/app:pull"`, p.Realm)
	if a.StatusCode != http.StatusUnauthorized || a.Header.Get("WWW-Authenticate") != wantChallenge {
		t.Errorf("anonymous manifest GET: %s %q, want 401 %q", a.Status, a.Header.Get("WWW-Authenticate"), wantChallenge)
	}
	if !strings.HasPrefix(p.Realm, "http://localhost:") || strings.Contains(p.Realm, p.Host) {
		t.Errorf("realm %q is not on another host than %s", p.Realm, p.Host)
	}
	tok := token(t, p, "repository:library/app:pull", "", "")
	a = rawDo(t, http.MethodGet, base+"/manifests/v1", tok)
	m, err := v1.ParseManifest(strings.NewReader(a.body))
	if a.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("manifest: %s %v", a.Status, err)
	}
	cfg := m.Config.Digest

	p.ResetCounts()
	a = rawDo(t, http.MethodGet, base+"/blobs/"+cfg.String(), tok)
	loc, err := url.Parse(a.Header.Get("Location"))
	if a.StatusCode != http.StatusTemporaryRedirect || err != nil || loc.Host != p.CDN || p.CDN == p.Host {
		t.Fatalf("blob GET: %s to %q (%v), want a 307 to %s", a.Status, a.Header.Get("Location"), err, p.CDN)
	}
	if a := rawDo(t, http.MethodHead, base+"/blobs/"+cfg.String(), tok); a.StatusCode != http.StatusOK {
		t.Errorf("blob HEAD: %s, want 200 from the registry", a.Status)
	}
	a = rawDo(t, http.MethodGet, loc.String(), tok)
	if a.StatusCode != http.StatusBadRequest || !strings.Contains(a.body, "<Code>InvalidArgument</Code>") {
		t.Errorf("CDN GET with Authorization: %s %s, want 400 InvalidArgument", a.Status, a.body)
	}
	a = rawDo(t, http.MethodGet, loc.String(), "")
	sum := sha256.Sum256([]byte(a.body))
	if a.StatusCode != http.StatusOK || "sha256:"+hex.EncodeToString(sum[:]) != cfg.String() {
		t.Errorf("CDN GET: %s, content digest sha256:%x, want 200 %s", a.Status, sum, cfg)
	}
	q := loc.Query()
	sig := q.Get("sig")
	tamper := func(key, value string) string {
		u := *loc
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	flipped := sig[:len(sig)-1] + "0"
	if strings.HasSuffix(sig, "0") {
		flipped = sig[:len(sig)-1] + "1"
	}
	exp, _ := strconv.ParseInt(q.Get("expires"), 10, 64)
	for what, u := range map[string]string{
		"signature":  tamper("sig", flipped),
		"expiry":     tamper("expires", strconv.FormatInt(exp+3600, 10)),
		"no sig":     tamper("sig", ""),
		"other blob": strings.Replace(loc.String(), cfg.Hex, m.Layers[0].Digest.Hex, 1),
	} {
		if a := rawDo(t, http.MethodGet, u, ""); a.StatusCode != http.StatusForbidden || !strings.Contains(a.body, "<Code>SignatureDoesNotMatch</Code>") {
			t.Errorf("CDN GET with a tampered %s: %s %s, want 403 SignatureDoesNotMatch", what, a.Status, a.body)
		}
	}
	c := p.Counts()
	if c.BlobGETs != 1 || c.CDNGETs != 6 || c.CDNWithAuthorization != 1 || c.CDNRefused != 5 {
		t.Errorf("blob GETs %d, CDN GETs %d, with Authorization %d, refused %d; want 1, 6, 1, 5",
			c.BlobGETs, c.CDNGETs, c.CDNWithAuthorization, c.CDNRefused)
	}
}

// TestProfileDockerHubRateLimit spends an anonymous pull budget, checks the 429 and the
// headers, that HEADs stay free, that a user has a budget of its own, and that the window
// rolls.
func TestProfileDockerHubRateLimit(t *testing.T) {
	p, ctx := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileDockerHub, PullBudget: 3, Window: 2 * time.Second})
	if _, err := p.Push(ctx, "library/app", "v1", testenv.ImageSpec{}); err != nil {
		t.Fatal(err)
	}
	u := "http://" + p.Host + "/v2/library/app/manifests/v1"
	anon := token(t, p, "repository:library/app:pull", "", "")
	headers := func(a answer, remaining, source string) {
		t.Helper()
		if got := a.Header.Get("ratelimit-limit"); got != "3;w=2" {
			t.Errorf("ratelimit-limit %q, want 3;w=2", got)
		}
		if got := a.Header.Get("ratelimit-remaining"); got != remaining+";w=2" {
			t.Errorf("ratelimit-remaining %q, want %s;w=2", got, remaining)
		}
		if got := a.Header.Get("docker-ratelimit-source"); got != source {
			t.Errorf("docker-ratelimit-source %q, want %q", got, source)
		}
	}
	for i := range 3 {
		a := rawDo(t, http.MethodGet, u, anon)
		if a.StatusCode != http.StatusOK {
			t.Fatalf("pull %d: %s %s", i+1, a.Status, a.body)
		}
		headers(a, strconv.Itoa(2-i), "127.0.0.1")
	}
	a := rawDo(t, http.MethodGet, u, anon)
	retry, err := strconv.Atoi(a.Header.Get("Retry-After"))
	if a.StatusCode != http.StatusTooManyRequests || err != nil || retry < 1 || retry > 2 || !strings.Contains(a.body, `"code":"TOOMANYREQUESTS"`) {
		t.Fatalf("pull past the budget: %s Retry-After %q %s, want 429 with Retry-After 1..2 and TOOMANYREQUESTS",
			a.Status, a.Header.Get("Retry-After"), a.body)
	}
	headers(a, "0", "127.0.0.1")
	a = rawDo(t, http.MethodHead, u, anon)
	if a.StatusCode != http.StatusOK {
		t.Errorf("HEAD past the budget: %s, want 200", a.Status)
	}
	headers(a, "0", "127.0.0.1")
	user := token(t, p, "repository:library/app:pull", p.Username, p.Password())
	a = rawDo(t, http.MethodGet, u, user)
	if a.StatusCode != http.StatusOK {
		t.Errorf("a user's pull: %s, want 200 (a budget of its own)", a.Status)
	}
	headers(a, "2", p.Username)
	// go-containerregistry retries 429s with a 1s, 3s backoff and ignores Retry-After: off.
	_, err = remote.Get(mustRef(t, p, "library/app", "v1"), remote.WithContext(ctx), remote.WithRetryStatusCodes())
	if statusOf(err) != http.StatusTooManyRequests {
		t.Errorf("remote.Get past the budget: %v, want a 429", err)
	}
	c := p.Counts()
	if c.Pulls != 4 || c.ManifestGETs != 6 || c.ManifestHEADs != 1 || c.RateLimited != 2 {
		t.Errorf("pulls %d, manifest GETs %d, HEADs %d, 429s %d; want 4, 6, 1, 2", c.Pulls, c.ManifestGETs, c.ManifestHEADs, c.RateLimited)
	}
	// The oldest pull leaves the window within Retry-After.
	time.Sleep(time.Duration(retry) * time.Second)
	a = rawDo(t, http.MethodGet, u, anon)
	if a.StatusCode != http.StatusOK {
		t.Errorf("pull after Retry-After: %s, want 200", a.Status)
	}
	if got := p.Counts().Pulls; got != 5 {
		t.Errorf("pulls %d, want 5", got)
	}
}

// TestProfilePrivateRepository checks that anonymous tokens do not open a private
// repository while the user's credentials do, and that a token covers only its scope.
func TestProfilePrivateRepository(t *testing.T) {
	for _, prof := range []testenv.Profile{testenv.ProfileDockerHub, testenv.ProfileGHCR} {
		t.Run(string(prof), func(t *testing.T) {
			p, ctx := startProfile(t, testenv.ProfileOptions{Profile: prof, Private: []string{"acme/secret"}})
			digest, err := p.Push(ctx, "acme/secret", "v1", testenv.ImageSpec{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Push(ctx, "acme/public", "v1", testenv.ImageSpec{}); err != nil {
				t.Fatal(err)
			}
			opts := []remote.Option{remote.WithContext(ctx), remote.WithRetryStatusCodes()}
			if _, err := remote.Get(mustRef(t, p, "acme/public", "v1"), opts...); err != nil {
				t.Errorf("anonymous pull of a public repository: %v", err)
			}
			if _, err := remote.Get(mustRef(t, p, "acme/secret", "v1"), opts...); statusOf(err) != http.StatusUnauthorized {
				t.Errorf("anonymous pull of a private repository: %v, want a 401", err)
			}
			desc, err := remote.Get(mustRef(t, p, "acme/secret", "v1"), append(opts, remote.WithAuth(p.Auth()))...)
			if err != nil || desc.Digest != digest {
				t.Errorf("the user's pull of a private repository: %v", err)
			}
			u := "http://" + p.Host + "/v2/acme/secret/manifests/v1"
			a := rawDo(t, http.MethodGet, u, token(t, p, "repository:acme/secret:pull", "", ""))
			if a.StatusCode != http.StatusUnauthorized || !strings.Contains(a.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
				t.Errorf("anonymous token on a private repository: %s %q", a.Status, a.Header.Get("WWW-Authenticate"))
			}
			a = rawDo(t, http.MethodGet, u, token(t, p, "repository:acme/public:pull", p.Username, p.Password()))
			if a.StatusCode != http.StatusUnauthorized {
				t.Errorf("a token for acme/public on acme/secret: %s, want 401", a.Status)
			}
			if a := rawDo(t, http.MethodGet, u, "Bearer forged.token"); a.StatusCode != http.StatusUnauthorized {
				t.Errorf("a forged token: %s, want 401", a.Status)
			}
			a = rawDo(t, http.MethodGet, p.Realm+"?scope=repository:acme/secret:pull", "Basic "+basicValue(p.Username, "wrong"))
			if a.StatusCode != http.StatusUnauthorized {
				t.Errorf("token with a wrong password: %s, want 401", a.Status)
			}
		})
	}
}

// TestProfileQuayTagPages checks Quay's page cap and Link chain, Tag's speed, and what
// go-containerregistry's remote.List makes of them.
func TestProfileQuayTagPages(t *testing.T) {
	p, ctx := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileQuay})
	digest, err := p.Push(ctx, "org/app", "t000", testenv.ImageSpec{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"t000"}
	for i := 1; i < 250; i++ {
		tag := fmt.Sprintf("t%03d", i)
		if err := p.Tag(ctx, "org/app", digest, tag); err != nil {
			t.Fatal(err)
		}
		want = append(want, tag)
	}
	many, err := p.Push(ctx, "org/many", "v0000", testenv.ImageSpec{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 1000 {
		if err := p.Tag(ctx, "org/many", many, fmt.Sprintf("v%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("1,000 tags took %s", d)
	}

	base := "http://" + p.Host
	tok := token(t, p, "repository:org/app:pull", "", "")
	if a := rawDo(t, http.MethodGet, base+"/v2/org/app/tags/list?n=200", tok); a.StatusCode != http.StatusBadRequest {
		t.Errorf("n=200: %s, want 400", a.Status)
	}
	a := rawDo(t, http.MethodGet, base+"/v2/org/app/tags/list?n=100", tok)
	var page struct{ Tags []string }
	if a.StatusCode != http.StatusOK || json.Unmarshal([]byte(a.body), &page) != nil || !slices.Equal(page.Tags, want[:100]) ||
		a.Header.Get("Link") != `</v2/org/app/tags/list?last=t099&n=100>; rel="next"` {
		t.Errorf("n=100: %s %q, %d tags", a.Status, a.Header.Get("Link"), len(page.Tags))
	}
	var got []string
	pages := 0
	for next := "/v2/org/app/tags/list"; next != ""; pages++ {
		if pages == 10 {
			t.Fatal("more than 10 pages")
		}
		a := rawDo(t, http.MethodGet, base+next, tok)
		var list struct{ Tags []string }
		if a.StatusCode != http.StatusOK || json.Unmarshal([]byte(a.body), &list) != nil || len(list.Tags) != 50 {
			t.Fatalf("page %d: %s %s", pages+1, a.Status, a.body)
		}
		got = append(got, list.Tags...)
		next = ""
		if link := a.Header.Get("Link"); link != "" {
			next = link[1:strings.Index(link, ">")]
		}
	}
	if pages != 5 || !slices.Equal(got, want) {
		t.Errorf("%d pages with %d tags, want 5 pages with the 250 tags once each", pages, len(got))
	}

	repo := mustRef(t, p, "org/app", "t000").Context()
	// go-containerregistry asks for n=1000 unless told otherwise: Quay refuses that.
	if _, err := remote.List(repo, remote.WithContext(ctx)); statusOf(err) != http.StatusBadRequest {
		t.Errorf("remote.List with its default page size: %v, want a 400", err)
	}
	p.ResetCounts()
	tags, err := remote.List(repo, remote.WithContext(ctx), remote.WithPageSize(100))
	if err != nil || !slices.Equal(tags, want) {
		t.Errorf("remote.List with pages of 100: %d tags, %v", len(tags), err)
	}
	if c := p.Counts(); c.TagListGETs != 3 {
		t.Errorf("tag list GETs %d, want 3", c.TagListGETs)
	}
	tags, err = remote.List(mustRef(t, p, "org/many", "v0000").Context(), remote.WithContext(ctx), remote.WithPageSize(100))
	if err != nil || len(tags) != 1000 {
		t.Errorf("org/many: %d tags, %v", len(tags), err)
	}
}

// TestProfileECRPasswordExpiry checks that ECR's passwords expire, that a rotated one works
// and that the previous one stays valid until its own expiry.
func TestProfileECRPasswordExpiry(t *testing.T) {
	p, ctx := startProfile(t, testenv.ProfileOptions{Profile: testenv.ProfileECR, PasswordTTL: time.Second})
	if _, err := p.Push(ctx, "team/app", "v1", testenv.ImageSpec{}); err != nil {
		t.Fatal(err)
	}
	if p.Username != "AWS" || p.Realm != "" {
		t.Errorf("user %q, realm %q; want AWS and none", p.Username, p.Realm)
	}
	ref := mustRef(t, p, "team/app", "v1")
	pull := func(auth authn.Authenticator) error {
		img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuth(auth), remote.WithRetryStatusCodes())
		if err != nil {
			return err
		}
		_, err = img.ConfigFile()
		return err
	}
	pw1 := p.Password()
	if err := pull(&authn.Basic{Username: "AWS", Password: pw1}); err != nil {
		t.Fatal(err)
	}
	if err := pull(authn.Anonymous); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("anonymous pull: %v, want a 401", err)
	}
	pw2 := p.RotatePassword()
	if pw2 == pw1 || p.Password() != pw2 {
		t.Fatal("RotatePassword did not issue a new current password")
	}
	if err := pull(&authn.Basic{Username: "AWS", Password: pw1}); err != nil {
		t.Errorf("the previous password before its expiry: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	err := pull(&authn.Basic{Username: "AWS", Password: pw1})
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized || !strings.Contains(err.Error(), "expired") {
		t.Errorf("an expired password: %v, want a 401 saying it expired", err)
	}
	if err := pull(&authn.Basic{Username: "AWS", Password: "not-issued"}); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("a password never issued: %v, want a 401", err)
	}
	p.RotatePassword()
	if err := pull(p.Auth()); err != nil {
		t.Errorf("a rotated password: %v", err)
	}
	if c := p.Counts(); c.CDNWithAuthorization != 0 || c.CDNGETs != 3 || c.TokenRequests != 0 {
		t.Errorf("CDN GETs %d (with Authorization %d), token requests %d; want 3 (0), 0", c.CDNGETs, c.CDNWithAuthorization, c.TokenRequests)
	}
}
