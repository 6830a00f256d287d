package scan_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

func pathHas(s string) func(*http.Request) bool {
	return func(r *http.Request) bool { return strings.Contains(r.URL.Path, s) }
}

func times(n int, f testenv.Fault) []testenv.Fault {
	out := make([]testenv.Fault, n)
	for i := range out {
		out[i] = f
	}
	return out
}

func tagsBody(n int, name func(i int) string) []byte {
	var b strings.Builder
	b.WriteString(`{"name":"faulty","tags":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", name(i))
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// TestFaults runs the scanner against the real distribution registry behind the fault
// proxy: each fault gives a clear error (or a per-tag error), bounded retries, nothing
// cached from the bad response, and a healthy repository beside it scans normally.
func TestFaults(t *testing.T) {
	env := testenv.New(t, testenv.Options{Registry: true})
	reg := env.Registry
	ctx := ctxT(t)
	for _, repo := range []string{"faulty", "other"} {
		if _, err := reg.Push(ctx, repo, "v1", testenv.ImageSpec{Created: base}); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Push(ctx, repo, "v2", testenv.ImageSpec{Created: base.Add(time.Hour), Platforms: multiArch}); err != nil {
			t.Fatal(err)
		}
	}
	proxy := testenv.StartFaultProxy(reg.Host)
	defer proxy.Close()
	list := pathHas("/v2/faulty/tags/list")
	blobs := pathHas("/v2/faulty/blobs/")
	manifests := pathHas("/v2/faulty/manifests/")
	status := func(code int, h ...string) testenv.Fault {
		f := testenv.Fault{Status: code, Header: http.Header{}, Body: []byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)}
		for i := 0; i+1 < len(h); i += 2 {
			f.Header.Set(h[i], h[i+1])
		}
		return f
	}
	// Wrong credentials: the registry refuses them with 401 and a challenge, on every
	// request of the repository, or (a token that lost its scope) on a config blob after a
	// good listing and a first good config.
	unauthorized := testenv.Fault{Status: http.StatusUnauthorized,
		Header: http.Header{"Www-Authenticate": {`Basic realm="imagebot-test"`}, "Content-Type": {"application/json"}},
		Body:   []byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":"user imagebot"}]}`)}
	const attempts = 4
	cases := []struct {
		name    string
		rule    *testenv.FaultRule
		wantErr error  // nil: the scan succeeds
		errText string // in the error
		tagErr  string // a tag whose metadata fails (scan succeeds)
		maxReq  int    // most requests the rule's path may see
		minTime time.Duration
		timeout time.Duration // per request, default 300ms
	}{
		{name: "429 with Retry-After, then fine", rule: &testenv.FaultRule{Match: list, Faults: []testenv.Fault{status(429, "Retry-After", "1")}},
			maxReq: 2, minTime: time.Second},
		{name: "429 asking for longer than MaxRetryAfter", rule: &testenv.FaultRule{Match: list, Then: ptr(status(429, "Retry-After", "60"))},
			wantErr: scan.ErrRateLimited, errText: "list tags: 429 Too Many Requests (retry in 1m0s)", maxReq: 1},
		{name: "429 without Retry-After", rule: &testenv.FaultRule{Match: list, Then: ptr(status(429))},
			wantErr: scan.ErrRateLimited, errText: "429 Too Many Requests (after 4 attempts)", maxReq: attempts},
		{name: "500 every time", rule: &testenv.FaultRule{Match: list, Then: ptr(status(500))},
			wantErr: scan.ErrUnavailable, errText: "list tags: 500 Internal Server Error (after 4 attempts)", maxReq: attempts},
		{name: "503 twice, then fine", rule: &testenv.FaultRule{Match: list, Faults: times(2, status(503))}, maxReq: 3},
		// Go's transport itself retries an idempotent request when a reused connection
		// breaks, on the next idle one, then on a new one (a fresh connection's failure is
		// not retried): with DefaultMaxIdleConnsPerHost (2) idle connections, a reset costs
		// up to three requests per attempt.
		{name: "connection reset", rule: &testenv.FaultRule{Match: list, Then: &testenv.Fault{Reset: true}},
			wantErr: scan.ErrUnavailable, errText: "connection reset by peer (after 4 attempts)", maxReq: 3 * attempts},
		{name: "slower than the deadline", rule: &testenv.FaultRule{Match: list, Then: &testenv.Fault{Delay: 3 * time.Second}},
			wantErr: scan.ErrUnavailable, errText: "no response within 300ms (after 4 attempts)", maxReq: attempts},
		{name: "malformed JSON", rule: &testenv.FaultRule{Match: list, Then: &testenv.Fault{Rewrite: func([]byte) []byte { return []byte(`{"tags":["v1",`) }}},
			wantErr: scan.ErrBadResponse, errText: "list tags: bad response: tag list is not valid JSON", maxReq: 1},
		{name: "Link header that loops", rule: &testenv.FaultRule{Match: list, Then: &testenv.Fault{
			AddHeader: http.Header{"Link": {`</v2/faulty/tags/list>; rel="next"`}}}},
			wantErr: scan.ErrBadResponse, errText: "Link header loops back to /v2/faulty/tags/list", maxReq: 2},
		{name: "Link header to another host", rule: &testenv.FaultRule{Match: list, Then: &testenv.Fault{
			AddHeader: http.Header{"Link": {`<http://203.0.113.9/v2/faulty/tags/list?last=v2>; rel="next"`}}}},
			wantErr: scan.ErrBadResponse, errText: `Link header leads to another host "203.0.113.9"`, maxReq: 1},
		{name: "huge tag list", rule: &testenv.FaultRule{Match: list, Then: &testenv.Fault{
			Rewrite: func([]byte) []byte { return tagsBody(60000, func(i int) string { return fmt.Sprintf("tag-%06d", i) }) }}},
			wantErr: scan.ErrTagCap, errText: "list tags: tag cap reached: more than 50000 tags", maxReq: 1,
			timeout: 10 * time.Second},
		{name: "invalid tag names", rule: &testenv.FaultRule{Match: list, Then: &testenv.Fault{
			Rewrite: func([]byte) []byte { return []byte(`{"name":"faulty","tags":["v1","../../etc/passwd","v2"]}`) }}},
			wantErr: scan.ErrBadResponse, errText: `invalid tag name "../../etc/passwd"`, maxReq: 1},
		{name: "401: credentials refused", rule: &testenv.FaultRule{Match: pathHas("/v2/faulty/"), Then: &unauthorized},
			wantErr: scan.ErrUnauthorized, errText: "list tags: 401 Unauthorized (UNAUTHORIZED)", maxReq: 1},
		{name: "401 on a config blob after the listing", rule: &testenv.FaultRule{Match: blobs, Faults: []testenv.Fault{{}}, Then: &unauthorized},
			wantErr: scan.ErrUnauthorized, errText: "401 Unauthorized (UNAUTHORIZED)", maxReq: 2},
		{name: "manifest whose config blob is missing", rule: &testenv.FaultRule{Match: blobs, Then: ptr(status(404))},
			tagErr: "v1", maxReq: 2},
		{name: "malformed manifest", rule: &testenv.FaultRule{Match: manifests, Then: &testenv.Fault{
			Rewrite: func([]byte) []byte { return []byte(`{"schemaVersion":2,`) }}},
			tagErr: "v1", maxReq: 4},
		// A registry that announces no pull budget: a 429 to a pull is a rate limit,
		// retried, not a budget pause that fails the scan.
		{name: "429 to a pull without a budget, then fine", rule: &testenv.FaultRule{
			Match:  func(r *http.Request) bool { return r.Method == http.MethodGet && manifests(r) },
			Faults: times(1, status(429))}, maxReq: 4},
		{name: "manifest slower than the deadline", rule: &testenv.FaultRule{Match: manifests, Then: &testenv.Fault{Delay: 3 * time.Second}},
			wantErr: scan.ErrUnavailable, errText: "describe v", maxReq: 2 * attempts},
	}
	need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Reset()
			rule := tc.rule
			proxy.Add(rule)
			timeout := 300 * time.Millisecond
			if tc.timeout > 0 {
				timeout = tc.timeout
			}
			sc := scan.New(scan.Options{RequestTimeout: timeout,
				Retry: scan.Retry{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}})
			faulty, other := repoOf(t, proxy.Host, "faulty"), repoOf(t, proxy.Host, "other")

			var wg sync.WaitGroup
			var otherErr error
			var otherRes *scan.Result
			wg.Add(1)
			go func() { // the healthy neighbour, at the same time, through the same scanner
				defer wg.Done()
				otherRes, otherErr = sc.Scan(ctxT(t), other, need)
			}()
			start := time.Now()
			res, err := sc.Scan(ctxT(t), faulty, need)
			took := time.Since(start)
			wg.Wait()
			if otherErr != nil || len(otherRes.Images) != 2 {
				t.Errorf("the healthy repository was affected: %v, %+v", otherErr, otherRes)
			}
			if took > 10*time.Second {
				t.Errorf("scan took %s: retries are not bounded", took)
			}
			if took < tc.minTime {
				t.Errorf("scan took %s, want at least %s (Retry-After)", took, tc.minTime)
			}
			if n := rule.Seen(); n > tc.maxReq {
				t.Errorf("the faulty path saw %d requests, want at most %d", n, tc.maxReq)
			}
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if res != nil {
					t.Errorf("a failed scan returned a result: %+v", res)
				}
				if strings.Contains(err.Error(), "authentication required") || strings.Contains(err.Error(), "user imagebot") {
					t.Errorf("err = %q repeats the registry's free text", err)
				}
				if !strings.HasPrefix(err.Error(), "scan "+faulty.Name()+": ") || !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("err = %q, want it to start with the repository and say %q", err, tc.errText)
				}
			case tc.tagErr != "":
				if err != nil {
					t.Fatalf("a broken tag failed the scan: %v", err)
				}
				if res.TagErrors[tc.tagErr] == nil {
					t.Errorf("TagErrors = %v, want %s", res.TagErrors, tc.tagErr)
				}
				if _, ok := res.Images[tc.tagErr]; ok {
					t.Errorf("broken tag %s was described: %+v", tc.tagErr, res.Images[tc.tagErr])
				}
			default:
				if err != nil {
					t.Fatalf("err = %v, want success after retries", err)
				}
				if len(res.Tags) != 2 || len(res.Images) != 2 {
					t.Errorf("result = %+v", res)
				}
			}
			// Nothing was cached from the bad response: without faults the same scanner
			// finds both tags and their right build times.
			proxy.Reset()
			res, err = sc.Scan(ctxT(t), faulty, need)
			if err != nil {
				t.Fatalf("after the fault: %v", err)
			}
			// What a failed scan described before failing is kept (the next scan goes on
			// from there), but never the image whose description failed.
			if tc.wantErr != nil && res.MetaHits > 1 {
				t.Errorf("after a failed scan: %d metadata cache hits, want at most 1 (the image whose description failed is not cached)", res.MetaHits)
			}
			if len(res.Tags) != 2 || !res.Images["v1"].Created.Equal(base) || !res.Images["v2"].Created.Equal(base.Add(time.Hour)) {
				t.Errorf("after the fault: tags %v images %+v", res.Tags, res.Images)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestUnauthorizedKeepsTheLastGoodResult: credentials that start being refused (401) fail
// the repository's scans with ErrUnauthorized; the scheduler keeps feeding the last good
// result (not the tags pushed since), and a repository scanned at the same time, through
// the same scanner and registry, is unaffected.
func TestUnauthorizedKeepsTheLastGoodResult(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	for _, r := range []string{"faulty", "other"} {
		push(t, host, authn.Anonymous, r, "v1", testenv.ImageSpec{Created: base})
	}
	proxy := testenv.StartFaultProxy(host)
	defer proxy.Close()
	faulty, other := repoOf(t, proxy.Host, "faulty"), repoOf(t, proxy.Host, "other")
	ups := newUpdates()
	sched := scan.NewScheduler(scan.New(scan.Options{}), scan.SchedulerOptions{Interval: time.Hour, Workers: 2,
		RetryBase: time.Hour, OnUpdate: ups.on})
	need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
	sched.Watch("faulty", scan.Watch{Repo: faulty, Need: need})
	sched.Watch("other", scan.Watch{Repo: other, Need: need})
	sched.Start(ctxT(t))
	defer sched.Stop()
	good := ups.wait(t, faulty, 10*time.Second)
	if good.Err != nil || len(good.Result.Tags) != 1 {
		t.Fatalf("first scan of faulty: %+v", good)
	}
	ups.wait(t, other, 10*time.Second)

	for _, r := range []string{"faulty", "other"} {
		push(t, host, authn.Anonymous, r, "v2", testenv.ImageSpec{Created: base.Add(time.Hour)})
	}
	proxy.Add(&testenv.FaultRule{Match: pathHas("/v2/faulty/"), Then: &testenv.Fault{Status: http.StatusUnauthorized,
		Header: http.Header{"Www-Authenticate": {`Basic realm="imagebot-test"`}},
		Body:   []byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)}})
	sched.Trigger(faulty)
	sched.Trigger(other)
	up := ups.wait(t, faulty, 10*time.Second)
	if !errors.Is(up.Err, scan.ErrUnauthorized) {
		t.Fatalf("faulty with refused credentials: err = %v, want ErrUnauthorized", up.Err)
	}
	if up.Result != good.Result || len(up.Result.Tags) != 1 {
		t.Errorf("the failed scan replaced the last good result: %+v", up.Result)
	}
	if latest, ok := sched.Latest(faulty, ""); !ok || latest != good.Result {
		t.Errorf("Latest(faulty) = %+v, %v; want the last good result", latest, ok)
	}
	if up := ups.wait(t, other, 10*time.Second); up.Err != nil || len(up.Result.Tags) != 2 || up.Result.Images["v2"].Created.IsZero() {
		t.Errorf("other, scanned at the same time: %+v", up)
	}
	for _, st := range sched.Status() {
		if st.Repo.Name() == faulty.Name() && (st.Failures != 1 || !errors.Is(st.LastError, scan.ErrUnauthorized) || st.Tags != 1) {
			t.Errorf("faulty status = %+v", st)
		}
	}
}
