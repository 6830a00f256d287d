package scan

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scanner's Prometheus collectors. Create them once with NewMetrics on the
// daemon's registry and pass them to Options, SchedulerOptions and WebhookOptions; a nil
// *Metrics records nothing.
type Metrics struct {
	requests     *prometheus.CounterVec   // registry, method, status
	tagsListed   *prometheus.CounterVec   // registry
	tagCapHits   *prometheus.CounterVec   // registry
	cache        *prometheus.CounterVec   // kind, result
	rlWaits      *prometheus.CounterVec   // registry
	rlWaitSecs   *prometheus.CounterVec   // registry
	rlThrottled  *prometheus.CounterVec   // registry
	rlRate       *prometheus.GaugeVec     // registry
	scanDuration *prometheus.HistogramVec // registry, result
	failures     *prometheus.CounterVec   // registry, reason
	failing      prometheus.Gauge
	queued       prometheus.Gauge
	webhooks     *prometheus.CounterVec // format, result
	pulls        *prometheus.CounterVec // registry
	budgetLeft   *prometheus.GaugeVec   // registry
	budgetLimit  *prometheus.GaugeVec   // registry
	budgetPauses *prometheus.CounterVec // registry
	described    *prometheus.CounterVec // registry
	pending      *prometheus.GaugeVec   // registry
}

// NewMetrics creates the collectors and registers them on reg (not on the global registry).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "imagebot", "scan"
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_total", Help: "HTTP requests to registries, by registry host, method and status (\"error\" when no response)."},
			[]string{"registry", "method", "status"}),
		tagsListed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "tags_listed_total", Help: "Tags read from successful listings."}, []string{"registry"}),
		tagCapHits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "tag_cap_hits_total", Help: "Listings abandoned because the repository has more tags than the cap."}, []string{"registry"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "cache_total", Help: "Cache lookups by kind (digest: tag to digest; metadata: digest to build time) and result (hit, miss)."},
			[]string{"kind", "result"}),
		rlWaits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "ratelimit_waits_total", Help: "Requests that waited for the host's rate limit: its token bucket, or a Retry-After the registry asked for."}, []string{"registry"}),
		rlWaitSecs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "ratelimit_wait_seconds_total", Help: "Time spent waiting for the host's rate limit (token bucket or Retry-After)."}, []string{"registry"}),
		rlThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "ratelimit_throttled_total", Help: "429 answers that slowed the host's bucket."}, []string{"registry"}),
		rlRate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "ratelimit_rps", Help: "The host's current rate after the last 429 (recovers on success)."}, []string{"registry"}),
		scanDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "duration_seconds", Help: "Scan durations by registry and result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 10)}, []string{"registry", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "failures_total", Help: "Failed scans by registry and reason."}, []string{"registry", "reason"}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "repositories_failed", Help: "Watched repositories marked failed (several failures in a row)."}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "repositories_watched", Help: "Repositories (per credential set) the scheduler scans."}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "webhooks_total", Help: "Webhook deliveries by format and result (accepted, unauthorized, invalid)."},
			[]string{"format", "result"}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "pulls_total", Help: "Manifest GETs answered 200: what Docker Hub counts as pulls (HEADs and blob GETs are not)."}, []string{"registry"}),
		budgetLeft: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "pull_budget_remaining", Help: "Pulls left in the registry's window, as its RateLimit-Remaining last said."}, []string{"registry"}),
		budgetLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "pull_budget_limit", Help: "Pulls per window, as the registry's RateLimit-Limit last said."}, []string{"registry"}),
		budgetPauses: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "pull_budget_pauses_total", Help: "Manifest GETs held back because the registry's pull budget was down to the reserve."}, []string{"registry"}),
		described: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "tags_described_total", Help: "Tags whose digest and metadata a scan completed (from the cache or the registry)."}, []string{"registry"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "tags_pending", Help: "Tags the running scans still have to describe."}, []string{"registry"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.tagsListed, m.tagCapHits, m.cache, m.rlWaits,
		m.rlWaitSecs, m.rlThrottled, m.rlRate, m.scanDuration, m.failures, m.failing, m.queued, m.webhooks,
		m.pulls, m.budgetLeft, m.budgetLimit, m.budgetPauses, m.described, m.pending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) request(host, method, status string) {
	if m != nil {
		m.requests.WithLabelValues(host, method, status).Inc()
	}
}

func (m *Metrics) rateLimitWait(host string, d time.Duration) {
	if m != nil {
		m.rlWaits.WithLabelValues(host).Inc()
		m.rlWaitSecs.WithLabelValues(host).Add(d.Seconds())
	}
}

func (m *Metrics) throttled(host string, rps float64) {
	if m != nil {
		m.rlThrottled.WithLabelValues(host).Inc()
		m.rlRate.WithLabelValues(host).Set(rps)
	}
}

func (m *Metrics) cacheLookup(kind string, hit bool) {
	if m != nil {
		r := "miss"
		if hit {
			r = "hit"
		}
		m.cache.WithLabelValues(kind, r).Inc()
	}
}

func (m *Metrics) listed(host string, n int, capped bool) {
	if m == nil {
		return
	}
	if capped {
		m.tagCapHits.WithLabelValues(host).Inc()
		return
	}
	m.tagsListed.WithLabelValues(host).Add(float64(n))
}

func (m *Metrics) scanned(host string, d time.Duration, err error) {
	if m == nil {
		return
	}
	if err == nil {
		m.scanDuration.WithLabelValues(host, "ok").Observe(d.Seconds())
		return
	}
	m.scanDuration.WithLabelValues(host, "error").Observe(d.Seconds())
	m.failures.WithLabelValues(host, reason(err)).Inc()
}

func (m *Metrics) webhook(format, result string) {
	if m != nil {
		m.webhooks.WithLabelValues(format, result).Inc()
	}
}

func (m *Metrics) setFailing(n int) {
	if m != nil {
		m.failing.Set(float64(n))
	}
}

func (m *Metrics) setWatched(n int) {
	if m != nil {
		m.queued.Set(float64(n))
	}
}

func (m *Metrics) pull(host string) {
	if m != nil {
		m.pulls.WithLabelValues(host).Inc()
	}
}

func (m *Metrics) budget(host string, remaining, limit int) {
	if m != nil {
		m.budgetLeft.WithLabelValues(host).Set(float64(remaining))
		m.budgetLimit.WithLabelValues(host).Set(float64(limit))
	}
}

func (m *Metrics) budgetPause(host string) {
	if m != nil {
		m.budgetPauses.WithLabelValues(host).Inc()
	}
}

// progress moves a running scan's counts: described tags done, pending added (negative
// when they are done or the scan ends).
func (m *Metrics) progress(host string, described, pending int) {
	if m == nil {
		return
	}
	if described > 0 {
		m.described.WithLabelValues(host).Add(float64(described))
	}
	if pending != 0 {
		m.pending.WithLabelValues(host).Add(float64(pending))
	}
}
