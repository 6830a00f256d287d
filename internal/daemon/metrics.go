package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"imagebot.dev/imagebot/internal/bot"
)

// loopMetrics are the bots' metrics (the scanner registers its own).
type loopMetrics struct {
	reconciles *prometheus.CounterVec   // by repository and result
	duration   *prometheus.HistogramVec // by repository
	pushes     *prometheus.CounterVec   // by repository
	lastOK     *prometheus.GaugeVec     // unix time of the last reconcile without error
	pending    *prometheus.GaugeVec     // containers whose policy picks another tag than git holds
}

func newLoopMetrics(reg prometheus.Registerer) (*loopMetrics, error) {
	m := &loopMetrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagebot_reconciles_total",
			Help: "Reconciles of a repository (fetch, select, push, sync), by result."}, []string{"repository", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imagebot_reconcile_duration_seconds",
			Help: "Duration of a repository's reconcile.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}, []string{"repository"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagebot_pushes_total",
			Help: "Commits pushed with image updates."}, []string{"repository"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imagebot_last_successful_reconcile_timestamp_seconds",
			Help: "Unix time of the last reconcile that ended without error."}, []string{"repository"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imagebot_containers",
			Help: "Automated containers, by state (current, pending, other)."}, []string{"repository", "state"}),
	}
	for _, c := range []prometheus.Collector{m.reconciles, m.duration, m.pushes, m.lastOK, m.pending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records one reconcile's status.
func (m *loopMetrics) observe(st bot.Status) {
	result := "ok"
	if st.Error != "" {
		result = "error"
	} else {
		m.lastOK.WithLabelValues(st.Repository).Set(float64(st.Started.Add(st.Duration).Unix()))
	}
	m.reconciles.WithLabelValues(st.Repository, result).Inc()
	m.duration.WithLabelValues(st.Repository).Observe(st.Duration.Seconds())
	if st.Pushed != "" {
		m.pushes.WithLabelValues(st.Repository).Inc()
	}
	counts := map[string]int{"current": 0, "pending": 0, "other": 0}
	for _, t := range st.Targets {
		switch {
		case t.Pending:
			counts["pending"]++
		case t.Best != "" && st.Error == "":
			counts["current"]++
		default:
			counts["other"]++
		}
	}
	for state, n := range counts {
		m.pending.WithLabelValues(st.Repository, state).Set(float64(n))
	}
}
