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
// A scan of one repository makes, through one authenticated session (the /v2/ ping and a
// token, reused for SessionTTL):
//
//   - one tag listing: GET /v2/REPO/tags/list, following Link headers on the same host
//     (PageSize, per host, sets n=; 0 lets the registry choose), up to TagCap tags;
//   - for the tags Need.Match selects, only when Need.BuildTime or Need.Digest: the digest
//     (cached per tag; a tag is assumed immutable, except the tags in Need.Track, checked
//     with a HEAD on every scan, and any tag whose digest was last confirmed more than
//     DigestRecheck ago) and, for build times, the image config's "created" (cached by
//     digest: content is immutable). An unknown tag costs GET manifest + GET config, or
//     GET index + GET platform manifest + GET config for a multi-arch index (the index
//     digest is what Image.Digest pins; Options.Platform's image gives the build time).
//
// A rescan with nothing new makes one listing request per repository and no metadata
// request; so does the first scan after a restart with the persistent cache.
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
