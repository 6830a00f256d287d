package scan_test

import (
	"net/http"
	"testing"

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
	if got, want := value(t, reg, "imagebot_scan_requests_total", map[string]string{"registry": h, "method": "GET", "status": "200"}),
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
