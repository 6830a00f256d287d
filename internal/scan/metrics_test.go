package scan_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/prometheus/client_golang/prometheus"

	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

func TestMetrics(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	push(t, host, authn.Anonymous, "app", "v1", testenv.ImageSpec{Created: base})
	proxy := testenv.StartFaultProxy(host)
	defer proxy.Close()
	reg := prometheus.NewRegistry()
	m, err := scan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scan.NewMetrics(reg); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
	proxy.Add(&testenv.FaultRule{Match: pathHas("/tags/list"), Faults: []testenv.Fault{{Status: http.StatusTooManyRequests}}})
	sc := scan.New(scan.Options{Metrics: m, Retry: scan.Retry{Base: 1, Max: 1}})
	repo := repoOf(t, proxy.Host, "app")
	need := scan.Need{Match: func(string) bool { return true }, BuildTime: true}
	for range 2 {
		if _, err := sc.Scan(ctxT(t), repo, need); err != nil {
			t.Fatal(err)
		}
	}
	h := proxy.Host
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"imagebot_scan_requests_total", map[string]string{"registry": h, "method": "GET", "status": "429"}, 1},
		{"imagebot_scan_ratelimit_throttled_total", map[string]string{"registry": h}, 1},
		{"imagebot_scan_tags_listed_total", map[string]string{"registry": h}, 2},
		{"imagebot_scan_cache_total", map[string]string{"kind": "metadata", "result": "miss"}, 1},
		{"imagebot_scan_cache_total", map[string]string{"kind": "metadata", "result": "hit"}, 1},
		{"imagebot_scan_cache_total", map[string]string{"kind": "digest", "result": "hit"}, 1},
		{"imagebot_scan_cache_total", map[string]string{"kind": "digest", "result": "miss"}, 1},
	} {
		if got := value(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// Every request the proxy answered 200 is counted (its https ping attempt fails before).
	if got, want := value(t, reg, "imagebot_scan_requests_total", map[string]string{"registry": h, "method": "GET", "status": "200"})+
		value(t, reg, "imagebot_scan_requests_total", map[string]string{"registry": h, "method": "HEAD", "status": "200"}),
		float64(countStatus(proxy, 200)); got != want {
		t.Errorf("200 requests counted %v, proxy saw %v", got, want)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "imagebot_scan_duration_seconds" && mf.GetMetric()[0].GetHistogram().GetSampleCount() != 2 {
			t.Errorf("scan durations: %v", mf)
		}
	}
}

func countStatus(p *testenv.FaultProxy, code int) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Status == code {
			n++
		}
	}
	return n
}

// value reads one series from reg.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// TestMetricsMoveOnTheirEvents: the rate-limit wait, failure, tag cap and webhook counters
// each move when their event happens, with the labels the dashboards use.
func TestMetricsMoveOnTheirEvents(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	for _, r := range []string{"app", "broken"} {
		push(t, host, authn.Anonymous, r, "v1", testenv.ImageSpec{Created: base})
	}
	retag(t, host, authn.Anonymous, "app", "v1", "v2")
	proxy := testenv.StartFaultProxy(host)
	defer proxy.Close()
	h := proxy.Host
	reg := prometheus.NewRegistry()
	m, err := scan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	sc := scan.New(scan.Options{Metrics: m, Retry: scan.Retry{Attempts: 2, Base: time.Millisecond}})
	app, broken := repoOf(t, h, "app"), repoOf(t, h, "broken")
	// Warm the session, so that only the scans below count.
	if _, err := sc.Scan(ctxT(t), app, scan.Need{}); err != nil {
		t.Fatal(err)
	}
	check := func(what, name string, labels map[string]string, want float64) {
		t.Helper()
		if got := value(t, reg, name, labels); got != want {
			t.Errorf("%s: %s%v = %v, want %v", what, name, labels, got, want)
		}
	}
	waits := map[string]string{"registry": h}
	check("before any 429", "imagebot_scan_ratelimit_waits_total", waits, 0)

	// A 429 asking for a second: the retry waits for it, counted as a rate-limit wait.
	proxy.Add(&testenv.FaultRule{Match: pathHas("/v2/app/tags/list"), Faults: []testenv.Fault{{Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {"1"}}}}})
	res, err := sc.Scan(ctxT(t), app, scan.Need{})
	if err != nil {
		t.Fatal(err)
	}
	check("a 429 with Retry-After: 1", "imagebot_scan_ratelimit_waits_total", waits, 1)
	if secs := value(t, reg, "imagebot_scan_ratelimit_wait_seconds_total", waits); secs < 0.9 || secs > 5 {
		t.Errorf("a 429 with Retry-After: 1: waited %vs in all, want about 1", secs)
	}
	if res.Waited < 900*time.Millisecond {
		t.Errorf("a 429 with Retry-After: 1: Result.Waited = %s, want about 1s", res.Waited)
	}
	check("a 429 with Retry-After: 1", "imagebot_scan_ratelimit_throttled_total", waits, 1)

	// A failing repository: one failure per failed scan, by reason.
	proxy.Add(&testenv.FaultRule{Match: pathHas("/v2/broken/"), Then: &testenv.Fault{Status: http.StatusInternalServerError}})
	for range 2 {
		if _, err := sc.Scan(ctxT(t), broken, scan.Need{}); !errors.Is(err, scan.ErrUnavailable) {
			t.Fatalf("broken: err = %v, want ErrUnavailable", err)
		}
	}
	check("two failed scans", "imagebot_scan_failures_total", map[string]string{"registry": h, "reason": "unavailable"}, 2)

	// The tag cap: app lists 2 tags, one more than its cap.
	listed := value(t, reg, "imagebot_scan_tags_listed_total", waits)
	if _, err := sc.Scan(ctxT(t), app, scan.Need{TagCap: 1}); !errors.Is(err, scan.ErrTagCap) {
		t.Fatalf("cap 1: err = %v, want ErrTagCap", err)
	}
	check("a capped listing", "imagebot_scan_tag_cap_hits_total", waits, 1)
	check("a capped listing", "imagebot_scan_failures_total", map[string]string{"registry": h, "reason": "tag_cap"}, 1)
	check("a capped listing (not counted as listed)", "imagebot_scan_tags_listed_total", waits, listed)

	// Webhooks: accepted, refused (wrong token), unreadable.
	hook, err := scan.NewWebhook(scan.WebhookOptions{Format: scan.FormatGeneric, Token: "right", Trigger: &recorder{}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		token, body string
		code        int
	}{
		{"right", `{"image":"registry.example.com/team/app","tag":"v2"}`, http.StatusAccepted},
		{"wrong", `{"image":"registry.example.com/team/app","tag":"v2"}`, http.StatusUnauthorized},
		{"wrong", `{"image":"registry.example.com/team/app","tag":"v3"}`, http.StatusUnauthorized},
		{"right", `{"image":`, http.StatusBadRequest},
	} {
		req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+tc.token)
		w := httptest.NewRecorder()
		hook.ServeHTTP(w, req)
		if w.Code != tc.code {
			t.Fatalf("webhook with token %q: status %d, want %d", tc.token, w.Code, tc.code)
		}
	}
	check("webhooks", "imagebot_scan_webhooks_total", map[string]string{"format": "generic", "result": "accepted"}, 1)
	check("webhooks", "imagebot_scan_webhooks_total", map[string]string{"format": "generic", "result": "unauthorized"}, 2)
	check("webhooks", "imagebot_scan_webhooks_total", map[string]string{"format": "generic", "result": "invalid"}, 1)
}
