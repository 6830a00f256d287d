package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/scan"
)

var formats = []scan.Format{scan.FormatDistribution, scan.FormatDockerHub, scan.FormatHarbor,
	scan.FormatQuay, scan.FormatGitHub, scan.FormatGeneric}

// serve starts the HTTP server on Options.Listen.
func (d *Daemon) serve(m *scan.Metrics) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/status", d.status)
	mux.HandleFunc("POST /api/v1/sync", d.syncNow)
	mux.HandleFunc("POST /api/v1/release", d.needAPIToken(d.release))
	mux.HandleFunc("POST /api/v1/annotate", d.needAPIToken(d.annotate))
	if d.opts.WebhookToken != "" || len(d.opts.WebhookHMACSecret) > 0 {
		for _, f := range formats {
			secret, token := d.opts.WebhookHMACSecret, d.opts.WebhookToken
			switch {
			case f != scan.FormatGitHub && f != scan.FormatGeneric:
				secret = nil // the other formats cannot be signed: token only
			case f == scan.FormatGitHub && len(secret) > 0:
				token = "" // GitHub signs its deliveries and cannot add a header: the signature
			}
			if secret == nil && token == "" {
				continue // no way to authenticate this format: not served
			}
			h, err := scan.NewWebhook(scan.WebhookOptions{Format: f, Trigger: d.sched, Token: token,
				HMACSecret: secret, Logger: d.log, Metrics: m})
			if err != nil {
				return nil, err
			}
			mux.Handle("POST /hooks/registry/"+string(f), h)
		}
	}
	for _, f := range []string{"github", "gitea", "gitlab"} {
		mux.HandleFunc("POST /hooks/git/"+f, d.gitHook(f))
	}
	l, err := net.Listen("tcp", d.opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", d.opts.Listen, err)
	}
	d.mu.Lock()
	d.addr = l.Addr()
	d.mu.Unlock()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server stopped", "err", err)
		}
	}()
	d.log.Info("serving", "addr", l.Addr().String())
	return srv, nil
}

// readyz is 200 once every running repository reconciled once (one that cannot start is
// in the status, and does not hold the others' webhooks back); a standby replica is not
// ready, so that a Service sends webhooks to the leader only.
func (d *Daemon) readyz(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	standby := d.standby
	d.mu.Unlock()
	if standby {
		http.Error(w, "standby: another replica leads", http.StatusServiceUnavailable)
		return
	}
	for _, st := range d.bots2status() {
		if st.Started.IsZero() && !strings.HasPrefix(st.Error, "cannot start: ") {
			http.Error(w, "repository "+st.Repository+" has not reconciled yet", http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

// Status is what /api/v1/status returns.
type Status struct {
	Repositories []bot.Status  `json:"repositories"`
	Images       []ImageStatus `json:"images"`
	Syncs        []SyncStatus  `json:"syncs,omitempty"` // by repository, for those that sync
	ConfigError  string        `json:"configError,omitempty"`
	Standby      bool          `json:"standby,omitempty"` // another replica leads
}

// ImageStatus is the scanner's view of one image repository.
type ImageStatus struct {
	Repository string    `json:"repository"`
	Tags       int       `json:"tags"`
	LastScan   time.Time `json:"lastScan"`
	LastOK     time.Time `json:"lastOK"`
	NextScan   time.Time `json:"nextScan"`
	Failed     bool      `json:"failed"`
	LastError  string    `json:"lastError,omitempty"`
	// Scanning is true while a scan runs; Progress says how far it has got ("described 312
	// of 900 tags"), or how far the last scan got when it failed part-way.
	Scanning bool   `json:"scanning,omitempty"`
	Progress string `json:"progress,omitempty"`
}

func (d *Daemon) bots2status() []bot.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]bot.Status, 0, len(d.bots)+len(d.failed))
	for name, r := range d.bots {
		st := r.bot.Status()
		st.Repository = name
		out = append(out, st)
	}
	for name, err := range d.failed {
		out = append(out, bot.Status{Repository: name, Error: "cannot start: " + err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Repository < out[j].Repository })
	return out
}

func (d *Daemon) status(w http.ResponseWriter, _ *http.Request) {
	st := Status{Repositories: d.bots2status()}
	for _, s := range d.sched.Status() {
		is := ImageStatus{Repository: s.Repo.Name(), Tags: s.Tags, LastScan: s.LastScan, LastOK: s.LastOK,
			NextScan: s.NextScan, Failed: s.Failed, Scanning: s.Scanning}
		if s.Progress.Total > 0 {
			is.Progress = s.Progress.String()
		}
		if s.LastError != nil {
			is.LastError = s.LastError.Error()
		}
		st.Images = append(st.Images, is)
	}
	sort.Slice(st.Images, func(i, j int) bool { return st.Images[i].Repository < st.Images[j].Repository })
	d.mu.Lock()
	st.ConfigError, st.Standby = d.configErr, d.standby
	for _, r := range d.bots {
		if ss := r.sync.status(); ss != nil {
			st.Syncs = append(st.Syncs, *ss)
		}
	}
	d.mu.Unlock()
	sort.Slice(st.Syncs, func(i, j int) bool { return st.Syncs[i].Repository < st.Syncs[j].Repository })
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(st)
}

// syncNow (POST /api/v1/sync[?repository=NAME][&allowMassPrune=true]) runs a reconcile of
// one repository, or of all, now, and answers when it has finished (at most 2 minutes) with
// their statuses. It needs the webhook token or the API token (Authorization: Bearer
// TOKEN); allowMassPrune, which lets this sync delete more than maxPruneFraction of the
// inventory, needs the API token.
func (d *Daemon) syncNow(w http.ResponseWriter, r *http.Request) {
	api := d.opts.APIToken != "" && tokenOK(r, d.opts.APIToken)
	if !api && !(d.opts.WebhookToken != "" && tokenOK(r, d.opts.WebhookToken)) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	name := r.URL.Query().Get("repository")
	massPrune := r.URL.Query().Get("allowMassPrune") == "true"
	if massPrune && !api {
		http.Error(w, "allowMassPrune needs the API token", http.StatusForbidden)
		return
	}
	if massPrune && name == "" {
		http.Error(w, "allowMassPrune needs a repository", http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	var targets []*bot.Bot
	var pruner massPruner
	for n, rb := range d.bots {
		if name == "" || n == name {
			targets = append(targets, rb.bot)
			if massPrune && rb.sync != nil {
				pruner = rb.sync.overridable
			}
		}
	}
	d.mu.Unlock()
	if len(targets) == 0 {
		http.Error(w, "no such repository: "+name, http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	var out []bot.Status
	for _, b := range targets {
		if pruner != nil {
			// Lifted for this reconcile's sync only: spent by it, or withdrawn if it never
			// got that far (a fetch failed, the request ended).
			pruner.AllowMassPruneOnce()
			d.log.Warn("prune limit lifted for this sync, by request", "repository", name)
		}
		st, _ := b.ReconcileOnce(ctx) // one at a time per bot: it waits for a cycle in flight
		if pruner != nil {
			pruner.DisallowMassPrune()
		}
		if st != nil {
			out = append(out, *st)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

func tokenOK(r *http.Request, token string) bool {
	got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	return subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}
