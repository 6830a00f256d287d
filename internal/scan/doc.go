// Package scan talks to container registries: it lists tags, fetches the metadata a policy
// needs (digest, build time), authenticates, rate-limits per registry host, caches results
// in a bbolt file and turns registry webhooks into scan triggers.
//
// # Using it
//
//	cache, err := scan.OpenCache(dataDir, scan.CacheOptions{Logger: log})
//	metrics, err := scan.NewMetrics(promRegistry)
//	sc := scan.New(scan.Options{Cache: cache, Metrics: metrics, Keychain: kc})
//	sched := scan.NewScheduler(sc, scan.SchedulerOptions{OnUpdate: bot.onScan, Metrics: metrics})
//	sched.Watch("my-demo/fluxdemo/flask", scan.Watch{Repo: repo, Need: scan.Need{
//		Match: pol.Match, BuildTime: pol.NeedsBuildTime(), Credentials: creds}})
//	sched.Start(ctx); defer sched.Stop()
//	hook, err := scan.NewWebhook(scan.WebhookOptions{Format: scan.FormatDistribution,
//		Token: token, Trigger: sched})
//	mux.Handle("/hooks/distribution", hook)
//
// OnUpdate receives each scan's Update; when Err is nil, Result.Candidates() feeds
// (*policy.Policy).Select. A failed scan (listing failed, partial, over the tag cap, or a
// tag's metadata unavailable for a reason that may heal) carries Err and the previous good
// Result, which the bot keeps using: a policy never runs on a partial listing. Scanner.Scan
// is the single step the scheduler repeats; tests call it directly.
//
// # Requests
//
// Manifests and blobs go through go-containerregistry's remote, over one authenticated
// session per repository (the /v2/ ping and a token, reused for SessionTTL; the token realm
// may be on another host, as Docker Hub's is). A scan of one repository makes:
//
//   - one tag listing: GET /v2/REPO/tags/list, following Link headers on the same host
//     (PageSize, per host, sets n=; 0 lets the registry choose), up to TagCap tags;
//   - for the tags Need.Match selects, only when Need.BuildTime or Need.Digest, in two
//     passes. First the digest of each tag: the cache's (a tag is assumed immutable, except
//     the tags in Need.Track and any tag whose digest was last confirmed more than
//     DigestRecheck ago), else a HEAD, which Docker Hub does not count as a pull. Then, for
//     build times, each distinct digest not described before (cached by digest: content is
//     immutable): GET the manifest by digest, for a multi-arch index GET the platform's
//     manifest too (the index digest is what Image.Digest pins; Options.Platform's image
//     gives the build time), and GET the config blob, following the registry's redirect to
//     its storage or CDN. So a cold scan costs one HEAD per tag and one manifest GET (a
//     "pull") and one config per distinct image, whatever its number of tags: 900 tags of
//     300 images are 900 HEADs, 300 pulls and 300 configs, not 900 of each.
//
// A rescan with nothing new makes one listing request per repository and no metadata
// request; so does the first scan after a restart with the persistent cache. A scan that
// fails part-way (its deadline, a pull budget, a 5xx) keeps in the cache the digests and
// images it completed, so the next scan, after a restart too, goes on from there; what was
// not completed is never cached. Need.Progress, Status.Progress and the metrics
// imagebot_scan_tags_described_total and _tags_pending tell how far a scan has got.
//
// Redirects: a request may follow at most 10 (go-containerregistry's redirect policy refuses
// private and link-local addresses but sets no limit of its own); the registry's
// Authorization header is never sent to another host (go-containerregistry adds it only
// for the registry's host; pre-signed storage URLs refuse a request that carries one). A
// redirected request counts as its registry's: its rate limit, its metrics label. A
// refused redirect fails the scan (the registry is broken, not one tag).
//
// The tag listing stays hand-written (list.go): remote.List reads every page whole and
// follows any Link, where a hostile registry could answer an endless chain of pages or one
// of a gigabyte; the listing here stops at TagCap (50,000 tags: at most 6.5 MB read, since a
// page larger than what room is left under the cap is refused before it is parsed), refuses
// a Link to another host or back to a page already read, and checks every tag's grammar.
// Manifest bodies are capped at 4 MiB and configs at 16 MiB (declared size, checked before
// the GET) by the transport underneath.
//
// # Gentleness
//
// Every request takes a token from its host's bucket (Options.Limit, default 10 requests/s
// with bursts of 20; Options.Hosts per host). A 429 halves the host's rate (down to 1/64
// of it), which recovers by a twentieth of the configured rate per successful request; the
// request is retried after Retry-After when the registry sends one of at most
// MaxRetryAfter (default 10s), and meanwhile no other request goes to that host (the wait
// counts as a rate-limit wait, in Result.Waited and the metrics), else with exponential
// backoff. A longer Retry-After fails
// the scan with ErrRateLimited and the scheduler waits that long. 500, 502, 503, 504,
// connection resets and attempts slower than RequestTimeout (default 30s, body included)
// are retried with jittered exponential backoff (200ms doubling, at most 10s between tries,
// 4 tries in all). A whole scan is bounded by ScanTimeout (default 5m).
//
// # Pull budgets
//
// Docker Hub counts manifest GETs as pulls (since 2025 10 an hour per anonymous address,
// 100 an hour for a Personal account; before, 100 and 200 per 6 hours) and says on every
// manifest answer, HEADs included, what is left: "RateLimit-Limit: 100;w=21600",
// "RateLimit-Remaining: 76;w=21600". The scanner reads
// these per host and stops pulling when what remains, less its pulls in flight, is down to
// PullReserve (default 20% of the limit, at least one pull: the kubelet's image pulls come
// out of the same budget). Pulls then pause for the window's share of each missing pull
// (360 s per pull on an anonymous budget of 10 an hour); HEADs, and so scans whose images are
// all described, go on, and so do other hosts. When the pause ends, a HEAD asks again
// before any pull is spent. A pause longer than MaxRetryAfter fails the scan with a
// *BudgetError ("paused by the index.docker.io pull budget until 14:05:00 (20 of 100 pulls
// left per 6h0m0s)"), which wraps ErrPullBudget and ErrRateLimited and gives the scheduler
// its wait through RetryAfter; what the scan described is kept. A 429 to a pull (someone
// else spent the budget) pauses pulls to that host for its Retry-After. Result.Pulls and
// imagebot_scan_pulls_total count pulls; imagebot_scan_pull_budget_remaining and _limit
// show the last word.
//
// # Scheduling
//
// Watches of one repository with one Credentials.ID are one scan: one listing per cycle
// however many workloads use the image, the union of what they need. Each repository is
// scanned at the shortest Interval of its watches (default 5m), ±10% jitter. Trigger (and
// so a webhook) moves a repository to the front of the queue at once. A failing repository
// backs off: after its n-th failure in a row its next scan waits RetryBase·2^(n-1) (10s,
// 20s, 40s …), capped at RetryMax (30m), drawn uniformly from 75% to 100% of that so that
// the repositories of a registry that went down do not retry in step, and never less than
// its interval: a failing repository is never scanned more often than a healthy one (at the
// default 5m interval: the interval for six failures, then up to 10m40s, up to 21m20s, then
// 22m30s to 30m each time). A longer Retry-After from the registry wins. A success resets
// the backoff; Status.NextScan is the next attempt, and after FailAfter (3) failures in a
// row Status says Failed with the last error. Scans run on Workers (4) goroutines, each
// bounded by ScanTimeout, so a failing registry never stalls the others.
//
// # Credentials
//
// Anonymous by default. DockerConfigFile reads a Docker config.json (reloaded when it
// changes; credential helpers are not run). SecretsCredentials reads Kubernetes
// imagePullSecrets (kubernetes.io/dockerconfigjson and the legacy kubernetes.io/dockercfg),
// matching registry keys as the kubelet does (scheme ignored, "*" per host label, optional
// port and path prefix; Docker Hub's aliases). The daemon implements KeychainProvider over
// the cluster API. The registry's WWW-Authenticate challenge decides between basic auth
// and a bearer token exchange (go-containerregistry's transport). The cloud keychains
// (ECR, GCR/Artifact Registry, ACR) live in the cloudauth subpackage so that this package
// does not carry their SDKs. Credentials never appear in errors: registry error bodies are
// reduced to their error code, and transport errors to their kind.
//
// # Cache
//
// OpenCache keeps, in DATA_DIR/scan.db, each repository's last good listing with the
// digests of its described tags, and the metadata (build time, media type) of each digest
// (of an index, per Options.Platform: a restart with another platform fetches its own).
// It holds at most MaxRepos repositories (default 10,000; the ones listed longest ago go
// first) and only metadata those reference. A file that is corrupt, of another format, or
// fails bbolt's consistency check after an unclean shutdown is moved to scan.db.corrupt and
// rebuilt empty, with a warning; the scanner never fails because of its cache.
//
// # Webhooks
//
// NewWebhook serves one format per handler: the distribution registry's notifications,
// Docker Hub, Harbor, Quay, GitHub Packages and a generic {"image": "...", "tag": "..."}.
// Every handler requires a shared token (Authorization: Bearer, X-Imagebot-Token or
// ?token=) or, for GitHub and generic bodies, an HMAC-SHA256 signature
// (X-Hub-Signature-256 / X-Signature-256). A refused request gets 401 and is logged
// without its body.
//
// # Metrics
//
// NewMetrics registers imagebot_scan_* collectors on the registry it is given: requests by
// registry, method and status; tags listed; tag cap hits; cache hits and misses; rate-limit
// waits, wait seconds, throttles and current rate; scan durations; failures by reason;
// failed and watched repositories; webhooks by format and result.
package scan
