package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/config"
	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/notify"
	"imagebot.dev/imagebot/internal/repoconfig"
	"imagebot.dev/imagebot/internal/scan"
	ksync "imagebot.dev/imagebot/internal/sync"
)

// SyncerFactory makes the reconciler of a repository (nil: no sync). It gives every result
// (the bot's syncs, resyncs, drift corrections, the outcome of rollouts) to onResult.
type SyncerFactory func(r *config.Repository, onResult func(*ksync.Result)) (bot.Syncer, error)

// Options configures a Daemon.
type Options struct {
	ConfigPaths []string // files or directories of repository configs
	DataDir     string   // mirrors, working trees, the scan cache
	Listen      string   // default ":8080"
	// WebhookToken and WebhookHMACSecret authenticate registry webhooks; with neither,
	// webhooks are refused.
	WebhookToken      string
	WebhookHMACSecret []byte
	// APIToken authenticates the edit API (release, annotate), which commits to git. It is
	// not the webhook token, which registries hold; without it the edit API is off.
	APIToken   string
	Syncers    SyncerFactory
	ConfigPoll time.Duration // default 10s
	// PullSecrets, when set, gives workloads' registry credentials from their
	// imagePullSecrets (see PullSecretKeychains).
	PullSecrets scan.KeychainProvider
	// LeaderElection, when set, runs the bots only while this replica holds the Lease.
	LeaderElection *LeaderElection
	Logger         *slog.Logger
}

// Daemon is a running imagebot.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	metrics *prometheus.Registry
	loops   *loopMetrics
	sched   *scan.Scheduler
	cache   *scan.Cache

	mu        sync.Mutex
	bots      map[string]*running // by repository name
	failed    map[string]string   // repositories that could not start, and why
	configErr string
	scanSum   string // of the registry settings the scanner runs with
	// scanMetrics are the scanner's, kept for the scanner a reload builds.
	scanMetrics *scan.Metrics
	addr        net.Addr
	standby     bool // leader election is on and another replica leads
}

type running struct {
	cfg    *config.Repository
	sum    string // of the config, to see changes
	bot    *bot.Bot
	sync   *syncReport        // nil without sync
	cancel context.CancelFunc // ends what the bot's helpers run (notification senders)
}

func (r *running) stop() {
	r.bot.Stop()
	r.cancel()
}

// New prepares a daemon; Run starts it.
func New(opts Options) (*Daemon, error) {
	if opts.Listen == "" {
		opts.Listen = ":8080"
	}
	if opts.ConfigPoll <= 0 {
		opts.ConfigPoll = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DataDir == "" {
		return nil, errors.New("daemon: a data dir is required")
	}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return &Daemon{opts: opts, log: opts.Logger, bots: map[string]*running{}, failed: map[string]string{}}, nil
}

// Run serves until ctx ends, then stops every bot (letting a push in flight finish).
func (d *Daemon) Run(ctx context.Context) error {
	repos, err := config.Load(d.opts.ConfigPaths...)
	if err != nil {
		return err
	}
	d.metrics = prometheus.NewRegistry()
	d.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	scanMetrics, err := scan.NewMetrics(d.metrics)
	if err != nil {
		return err
	}
	if d.loops, err = newLoopMetrics(d.metrics); err != nil {
		return err
	}
	d.cache, err = scan.OpenCache(filepath.Join(d.opts.DataDir, "scan"), scan.CacheOptions{Logger: d.log})
	if err != nil {
		return err
	}
	defer d.cache.Close()
	d.scanMetrics = scanMetrics
	sopts, err := scanOptions(repos, d.cache, scanMetrics)
	if err != nil {
		return err
	}
	d.scanSum = scanSettings(repos)
	for _, c := range scanConflicts(repos) {
		d.log.Warn("registry settings disagree between repositories; the scanner is shared and the last one read wins", "setting", c)
	}
	scanner := scan.New(sopts)
	d.sched = scan.NewScheduler(scanner, scan.SchedulerOptions{Metrics: scanMetrics, OnUpdate: d.onScan})
	d.sched.Start(ctx)
	defer d.sched.Stop()

	srv, err := d.serve(scanMetrics)
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())

	if d.opts.LeaderElection != nil {
		d.setStandby(true)
		return d.lead(ctx, d.opts.LeaderElection, func(ctx context.Context) {
			d.setStandby(false)
			defer d.setStandby(true)
			d.manage(ctx, repos)
		})
	}
	d.manage(ctx, repos)
	return nil
}

func (d *Daemon) setStandby(v bool) {
	d.mu.Lock()
	d.standby = v
	d.mu.Unlock()
}

// manage runs the bots of repos, and of the configs as they change, until ctx ends.
func (d *Daemon) manage(ctx context.Context, repos []*config.Repository) {
	d.apply(ctx, repos)
	defer d.stopAll()
	tick := time.NewTicker(d.opts.ConfigPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			repos, err := config.Load(d.opts.ConfigPaths...)
			d.mu.Lock()
			d.configErr = ""
			if err != nil {
				d.configErr = err.Error()
			}
			d.mu.Unlock()
			if err != nil {
				d.log.Error("config reload failed; keeping the running config", "err", err)
				continue
			}
			if err := d.rescanner(repos); err != nil {
				d.mu.Lock()
				d.configErr = err.Error()
				d.mu.Unlock()
				d.log.Error("registry settings not applied; keeping the running ones", "err", err)
			}
			d.apply(ctx, repos)
		}
	}
}

// Addr is the HTTP listener's address once Run is serving.
func (d *Daemon) Addr() net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

// scanOptions are the scanner's options from the registry settings of every repository
// (see repoconfig.ScanOptions), with the daemon's cache and metrics.
func scanOptions(repos []*config.Repository, cache *scan.Cache, m *scan.Metrics) (scan.Options, error) {
	opts, err := repoconfig.ScanOptions(repos...)
	opts.Cache, opts.Metrics = cache, m
	return opts, err
}

// rescanner gives the shared scheduler a scanner built from repos' registry settings when
// they changed (watches, results and schedules stay; rate limits and sessions start afresh).
func (d *Daemon) rescanner(repos []*config.Repository) error {
	sum := scanSettings(repos)
	if sum == d.scanSum {
		return nil
	}
	opts, err := scanOptions(repos, d.cache, d.scanMetrics)
	if err != nil {
		return err
	}
	for _, c := range scanConflicts(repos) {
		d.log.Warn("registry settings disagree between repositories; the scanner is shared and the last one read wins", "setting", c)
	}
	d.sched.SetScanner(scan.New(opts))
	d.scanSum = sum
	d.log.Info("registry settings changed: the scanner uses them from now on")
	return nil
}

// scanConflicts names the shared scanner's settings that repositories set differently:
// spec.scan.platform, and a registry host's settings.
func scanConflicts(repos []*config.Repository) []string {
	var out []string
	platform, hosts := "", map[string]config.Registry{}
	for _, r := range repos {
		if p := r.Spec.Scan.Platform; p != "" {
			if platform != "" && p != platform {
				out = append(out, fmt.Sprintf("spec.scan.platform: %s, then %s in %s", platform, p, r.Metadata.Name))
			}
			platform = p
		}
		for _, reg := range r.Spec.Registries {
			if prev, ok := hosts[reg.Host]; ok && prev != reg {
				out = append(out, fmt.Sprintf("spec.registries %s: set differently in %s", reg.Host, r.Metadata.Name))
			}
			hosts[reg.Host] = reg
		}
	}
	return out
}

// scanSettings sums what scanOptions reads, to tell a reload that changes it.
func scanSettings(repos []*config.Repository) string {
	type settings struct {
		Scan       config.Scan
		Registries []config.Registry
	}
	all := make([]settings, len(repos))
	h := sha256.New()
	for i, r := range repos {
		all[i] = settings{r.Spec.Scan, r.Spec.Registries}
		for _, reg := range r.Spec.Registries { // a rotated CA file is a change too
			if reg.CAFile != "" {
				content, err := os.ReadFile(reg.CAFile)
				if err != nil {
					content = []byte("unreadable: " + err.Error())
				}
				fmt.Fprintf(h, "%s\x00%x\x00", reg.CAFile, sha256.Sum256(content))
			}
		}
	}
	b, _ := json.Marshal(all)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// onScan wakes the bots that watch a repository whose scan succeeded.
func (d *Daemon) onScan(u scan.Update) {
	if u.Err != nil {
		d.log.Warn("scan failed", "repository", u.Repo.Name(), "err", u.Err)
		return
	}
	d.log.Debug("scanned", "repository", u.Repo.Name(), "tags", len(u.Result.Tags), "triggered", u.Triggered,
		"requests", u.Result.Requests)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.bots {
		if r.bot.Watches(u.Repo) {
			r.bot.Wake()
		}
	}
}

// configSum sums a repository's config and the files it names (keys, known_hosts,
// credentials, CA, notification URLs), so that a rotated Secret restarts the bot as an
// edited config does.
func configSum(r *config.Repository) string {
	h := sha256.New()
	b, _ := json.Marshal(r)
	h.Write(b)
	g := r.Spec.Git
	files := []string{g.Auth.SSHKeyFile, g.Auth.SSHKeyPassphraseFile, g.Auth.KnownHostsFile, g.Auth.PasswordFile, g.Auth.CAFile,
		g.Commit.SigningKeyFile, g.Commit.SigningKeyPassphraseFile}
	for _, reg := range r.Spec.Registries {
		files = append(files, reg.DockerConfigFile, reg.CAFile)
	}
	for _, n := range r.Spec.Notifications {
		files = append(files, n.URLFile)
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		content, err := os.ReadFile(f)
		if err != nil {
			content = []byte("unreadable: " + err.Error())
		}
		sum := sha256.Sum256(content)
		fmt.Fprintf(h, "\x00%s\x00%x", f, sum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// apply starts, restarts and stops bots to match repos.
func (d *Daemon) apply(ctx context.Context, repos []*config.Repository) {
	want := map[string]*config.Repository{}
	for _, r := range repos {
		want[r.Metadata.Name] = r
	}
	d.mu.Lock()
	for name := range d.failed {
		if _, ok := want[name]; !ok {
			delete(d.failed, name)
		}
	}
	var stop []*running
	for name, r := range d.bots {
		if w, ok := want[name]; !ok || configSum(w) != r.sum {
			stop = append(stop, r)
			delete(d.bots, name)
		}
	}
	d.mu.Unlock()
	for _, r := range stop {
		r.stop()
		d.log.Info("stopped repository", "repository", r.cfg.Metadata.Name)
	}
	for name, cfg := range want {
		d.mu.Lock()
		_, ok := d.bots[name]
		d.mu.Unlock()
		if ok {
			continue
		}
		botCtx, cancel := context.WithCancel(ctx)
		b, rep, err := d.newBot(botCtx, cfg)
		if err != nil {
			cancel()
			d.mu.Lock()
			known := d.failed[name] == err.Error()
			d.failed[name] = err.Error()
			d.mu.Unlock()
			if !known { // tried again at every config poll; logged when the reason changes
				d.log.Error("cannot start repository; trying again at the next config poll", "repository", name, "err", err)
			}
			continue
		}
		d.mu.Lock()
		delete(d.failed, name)
		d.bots[name] = &running{cfg: cfg, sum: configSum(cfg), bot: b, sync: rep, cancel: cancel}
		d.mu.Unlock()
		b.Start(botCtx)
		d.log.Info("started repository", "repository", name, "url", cfg.Spec.Git.URL, "branch", cfg.Spec.Git.Branch)
	}
}

func (d *Daemon) stopAll() {
	d.mu.Lock()
	bots := d.bots
	d.bots = map[string]*running{}
	d.mu.Unlock()
	for _, r := range bots {
		r.stop()
	}
}

func (d *Daemon) newBot(ctx context.Context, cfg *config.Repository) (*bot.Bot, *syncReport, error) {
	g := cfg.Spec.Git
	gopts := git.Options{Markers: repoconfig.Finder(cfg).Markers, URL: g.URL, Branch: g.Branch, PushBranch: g.PushBranch, Depth: g.Depth,
		Dir: filepath.Join(d.opts.DataDir, "repos", cfg.Metadata.Name), Timeout: g.Timeout.Duration,
		Author:          git.Signature{Name: g.Commit.AuthorName, Email: g.Commit.AuthorEmail},
		Committer:       git.Signature{Name: g.Commit.CommitterName, Email: g.Commit.CommitterEmail},
		MessageTemplate: g.Commit.MessageTemplate, CISkip: g.Commit.CISkip, SignOff: g.Commit.SignOff,
		PushOptions: g.PushOptions}
	switch {
	case g.Auth.SSHKeyFile != "":
		if g.Auth.InsecureIgnoreHostKey {
			d.log.Warn("SSH HOST KEY CHECKING IS OFF for this repository: anyone on the network path can impersonate the git server", "repository", cfg.Metadata.Name)
		}
		m, err := git.SSHAuth{User: sshUser(g), KeyFile: g.Auth.SSHKeyFile, PassphraseFile: g.Auth.SSHKeyPassphraseFile,
			KnownHosts: g.Auth.KnownHostsFile, InsecureIgnoreHostKey: g.Auth.InsecureIgnoreHostKey}.Method()
		if err != nil {
			return nil, nil, err
		}
		gopts.Auth = m
	case g.Auth.PasswordFile != "":
		m, err := git.HTTPSAuth{Username: g.Auth.Username, PasswordFile: g.Auth.PasswordFile}.Method()
		if err != nil {
			return nil, nil, err
		}
		gopts.Auth = m
	}
	if g.Auth.CAFile != "" {
		pem, err := os.ReadFile(g.Auth.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("git CA file: %w", err)
		}
		gopts.CABundle = pem
	}
	if g.Commit.SigningKeyFile != "" {
		key, err := git.ReadSigningKey(g.Commit.SigningKeyFile, g.Commit.SigningKeyPassphraseFile)
		if err != nil {
			return nil, nil, err
		}
		gopts.SigningKey = key
	}
	repo, err := git.Open(ctx, gopts)
	if err != nil {
		return nil, nil, err
	}
	creds, err := repoconfig.Credentials(cfg)
	if err != nil {
		return nil, nil, err
	}
	notifier, err := notifierFor(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	var syncer bot.Syncer
	var rep *syncReport
	if d.opts.Syncers != nil && *cfg.Spec.Sync.Enabled {
		rep = &syncReport{repo: cfg.Metadata.Name, notify: notifier.Notify, metrics: d.loops}
		s, err := d.opts.Syncers(cfg, rep.observe)
		if err != nil {
			return nil, nil, err
		}
		syncer = s
		rep.overridable, _ = s.(massPruner)
	}
	images := cfg.Spec.Images
	return bot.New(bot.Options{
		Finder: repoconfig.Finder(cfg),
		Notify: notifier.Notify, OnStatus: d.loops.observe,
		Name: cfg.Metadata.Name, Repo: repo, Scheduler: d.sched, Syncer: syncer, Credentials: creds, PullSecrets: d.opts.PullSecrets,
		ScanInterval: cfg.Spec.Scan.Interval.Duration, TagCap: cfg.Spec.Scan.TagCap, GitInterval: g.Interval.Or(time.Minute),
		Include: repoconfig.Include(cfg),
		ImageInterval: func(repo string) time.Duration {
			for _, iv := range images.Intervals {
				if config.MatchImage(iv.Image, repo) {
					return iv.Interval.Duration
				}
			}
			return 0
		},
		Logger: d.log,
	}), rep, nil
}

// sshUser is the configured user, else the URL's, else "git".
func sshUser(g config.Git) string {
	if g.Auth.SSHUser != "" {
		return g.Auth.SSHUser
	}
	u := g.URL
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if at := strings.Index(u, "@"); at >= 0 && at < strings.IndexAny(u+"/", ":/") {
		return u[:at]
	}
	return "git"
}

// notifierFor starts the notification sinks of a repository (nil when it has none).
func notifierFor(ctx context.Context, cfg *config.Repository) (*notify.Notifier, error) {
	if len(cfg.Spec.Notifications) == 0 {
		return nil, nil
	}
	var sinks []notify.Sink
	for _, n := range cfg.Spec.Notifications {
		b, err := os.ReadFile(n.URLFile)
		if err != nil {
			return nil, fmt.Errorf("notification URL: %w", err)
		}
		sinks = append(sinks, notify.Sink{URL: strings.TrimSpace(string(b)), Slack: n.Slack, Kinds: n.Events,
			Template: n.Template, Burst: n.Burst, Interval: n.Interval.Duration})
	}
	return notify.New(ctx, sinks)
}
