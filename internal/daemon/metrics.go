package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"imagebot.dev/imagebot/internal/bot"
	ksync "imagebot.dev/imagebot/internal/sync"
)

// loopMetrics are the bots' metrics (the scanner registers its own).
type loopMetrics struct {
	reconciles *prometheus.CounterVec   // by repository and result
	duration   *prometheus.HistogramVec // by repository
	pushes     *prometheus.CounterVec   // by repository
	lastOK     *prometheus.GaugeVec     // unix time of the last reconcile without error
	pending    *prometheus.GaugeVec     // containers whose policy picks another tag than git holds

	syncs        *prometheus.CounterVec   // sync results by repository and result
	syncDuration *prometheus.HistogramVec // by repository
	syncStatus   *prometheus.GaugeVec     // 1 for the last result's status, 0 for the others
	syncObjects  *prometheus.CounterVec   // objects written or deleted, by repository and action
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
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagebot_syncs_total",
			Help: "Sync results (applies, resyncs, drift corrections, rollout outcomes), by result."}, []string{"repository", "result"}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imagebot_sync_duration_seconds",
			Help:    "Duration of a sync, up to its result (a rollout's outcome: up to the end of the wait).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}, []string{"repository"}),
		syncStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imagebot_sync_status",
			Help: "1 for the status of the last sync result (Ready, Reconciling, Stalled), 0 for the others."}, []string{"repository", "status"}),
		syncObjects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagebot_sync_objects_total",
			Help: "Cluster objects a sync wrote or deleted, by action (created, configured, recreated, deleted, failed)."},
			[]string{"repository", "action"}),
	}
	for _, c := range []prometheus.Collector{m.reconciles, m.duration, m.pushes, m.lastOK, m.pending,
		m.syncs, m.syncDuration, m.syncStatus, m.syncObjects} {
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

// observeSync records one sync result of repo.
func (m *loopMetrics) observeSync(repo string, res *ksync.Result) {
	result := "ok"
	if res.Err != nil {
		result = "error"
	}
	m.syncs.WithLabelValues(repo, result).Inc()
	m.syncDuration.WithLabelValues(repo).Observe(res.Duration.Seconds())
	for _, st := range []ksync.Status{ksync.Ready, ksync.Reconciling, ksync.Stalled} {
		v := 0.0
		if res.Status == st {
			v = 1
		}
		m.syncStatus.WithLabelValues(repo, string(st)).Set(v)
	}
	if res.Changes == nil {
		return
	}
	for _, a := range []ksync.Action{ksync.Created, ksync.Configured, ksync.Recreated, ksync.Deleted, ksync.Failed} {
		if n := res.Changes.Count(a); n > 0 {
			m.syncObjects.WithLabelValues(repo, string(a)).Add(float64(n))
		}
	}
}
