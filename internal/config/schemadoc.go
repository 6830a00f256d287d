package config

// fieldDoc describes the config's fields in the JSON Schema (editors show it on hover), by
// path: "spec.git.url", "spec.registries[].host", "spec.markers.*.image". A test requires an
// entry for every field, so a new field comes with its documentation. Defaults go in
// fieldDefault.
var fieldDoc = map[string]string{
	"apiVersion":    "imagebot.dev/v1alpha1",
	"kind":          "Repository",
	"metadata":      "names the repository",
	"metadata.name": "names the repository in logs, metrics, the status API, the data dir and the cluster inventory: lower-case letters, digits and '-', at most 63 characters",
	"spec":          "what to automate in the repository, and how",

	"spec.git":             "the git repository, its branch and how to reach it",
	"spec.git.url":         "ssh://, https://, scp-like git@host:path, or a local path",
	"spec.git.branch":      "the branch to read and update",
	"spec.git.pushBranch":  "push updates to this branch instead (for review); it is rebuilt on the branch each cycle",
	"spec.git.paths":       "the directories or files, relative to the repository, where manifests are found and from which the cluster is synced",
	"spec.git.interval":    "how often the branch is fetched; a push webhook or a new tag wakes the bot sooner",
	"spec.git.depth":       "a shallow mirror of this many commits (0: full history)",
	"spec.git.timeout":     "bound on each fetch or push",
	"spec.git.pushOptions": "git push options (-o key=value) sent with each push",

	"spec.git.auth":                       "the files holding the credentials (never the credentials themselves)",
	"spec.git.auth.sshKeyFile":            "the deploy key: ed25519, ECDSA or RSA, OpenSSH or PEM",
	"spec.git.auth.sshKeyPassphraseFile":  "the passphrase of an encrypted deploy key",
	"spec.git.auth.sshUser":               "the SSH user; default the URL's, else git",
	"spec.git.auth.knownHostsFile":        "known_hosts holding the server's host key (strict checking); required for SSH unless insecureIgnoreHostKey",
	"spec.git.auth.insecureIgnoreHostKey": "accept any host key (logged loudly at every start); for throwaway setups only",
	"spec.git.auth.username":              "HTTPS user name",
	"spec.git.auth.passwordFile":          "HTTPS password or token",
	"spec.git.auth.caFile":                "HTTPS: PEM file of a private CA to trust for the git server, beside the system's",

	"spec.git.commit":                          "how imagebot commits",
	"spec.git.commit.authorName":               "commit author name",
	"spec.git.commit.authorEmail":              "commit author email",
	"spec.git.commit.committerName":            "committer name (also how imagebot recognises its own commits in the history); default the author's",
	"spec.git.commit.committerEmail":           "committer email; default the author's",
	"spec.git.commit.messageTemplate":          "Go template of the commit message over .Changes, .Files, .Workloads; functions tag and workload",
	"spec.git.commit.ciSkip":                   "append [ci skip] to the subject",
	"spec.git.commit.signOff":                  "add a Signed-off-by trailer",
	"spec.git.commit.signingKeyFile":           "armored OpenPGP private key to sign commits with",
	"spec.git.commit.signingKeyPassphraseFile": "the passphrase of the signing key",

	"spec.scan":          "how the registries are polled for this repository's images",
	"spec.scan.interval": "registry poll interval per image, ±10 % jitter; webhooks trigger scans at once",
	"spec.scan.platform": "whose build time counts in a multi-arch index (daemon-wide: the scanner is shared)",
	"spec.scan.tagCap":   "most tags an image repository may list; more fails the scan (never a silent truncation)",

	"spec.registries":                    "settings per registry host",
	"spec.registries[].host":             "the registry host, e.g. registry.example.com or 127.0.0.1:5000",
	"spec.registries[].dockerConfigFile": "credentials as a Docker config.json; a workload's imagePullSecrets win over these",
	"spec.registries[].rps":              "requests per second to the host (token bucket)",
	"spec.registries[].burst":            "token bucket burst",
	"spec.registries[].insecure":         "plain HTTP to the host",
	"spec.registries[].caFile":           "PEM file of a private CA to trust for the registry, beside the system's",
	"spec.registries[].pageSize":         "n= of tag listings (Quay wants at most 100); 0: the registry's page",

	"spec.images":                      "which images are automated and how often each is scanned",
	"spec.images.include":              "globs over host/repository (* also matches /); empty: all",
	"spec.images.exclude":              "globs over host/repository left out of automation",
	"spec.images.intervals":            "scan intervals for images matching a glob",
	"spec.images.intervals[].image":    "glob over host/repository",
	"spec.images.intervals[].interval": "the scan interval of those images",

	"spec.markers":          "Flux v2 {\"$imagepolicy\": \"namespace:name\"} marker names resolved to an image and a policy",
	"spec.markers.*.image":  "the image repository the marker's policy follows",
	"spec.markers.*.policy": "the policy, e.g. semver:~1.2 or glob:main-*;order=numeric",

	"spec.sync":                  "the built-in reconciler",
	"spec.sync.enabled":          "apply the branch to the cluster and keep it applied",
	"spec.sync.prune":            "delete what imagebot applied and git no longer declares (never on an empty or failed render)",
	"spec.sync.defaultNamespace": "the namespace of namespaced objects without one",
	"spec.sync.interval":         "the full reconcile that backs up the drift watch",
	"spec.sync.healthTimeout":    "how long a rollout may take before the sync counts as failed",
	"spec.sync.maxPruneFraction": "the largest share of the inventory one sync may delete; 1 turns the guard off",
	"spec.sync.pruneKinds":       "kinds prune otherwise never deletes that it may: Namespace, PersistentVolumeClaim, CustomResourceDefinition",

	"spec.notifications":            "webhooks told about updates and failures",
	"spec.notifications[].urlFile":  "file holding the webhook URL (a Slack incoming-webhook URL is a secret)",
	"spec.notifications[].slack":    "send {\"text\": …} rendered from template; else the event as JSON",
	"spec.notifications[].events":   "update, push-failed, sync-failed; empty: all",
	"spec.notifications[].template": "Go template of the Slack text",
	"spec.notifications[].burst":    "events sent at once before the rate limit",
	"spec.notifications[].interval": "one event per interval after the burst; the rest are dropped and counted",
}

// fieldDefault is the value a field takes when the file leaves it out.
var fieldDefault = map[string]any{
	"spec.git.branch":               "main",
	"spec.git.interval":             "1m",
	"spec.git.timeout":              "60s",
	"spec.git.depth":                0,
	"spec.git.commit.authorName":    "imagebot",
	"spec.git.commit.authorEmail":   "imagebot@users.noreply.imagebot.dev",
	"spec.scan.interval":            "5m",
	"spec.scan.platform":            "linux/amd64",
	"spec.scan.tagCap":              50000,
	"spec.registries[].rps":         10,
	"spec.registries[].burst":       20,
	"spec.sync.enabled":             true,
	"spec.sync.prune":               true,
	"spec.sync.defaultNamespace":    "default",
	"spec.sync.interval":            "5m",
	"spec.sync.healthTimeout":       "2m",
	"spec.sync.maxPruneFraction":    0.5,
	"spec.notifications[].burst":    5,
	"spec.notifications[].interval": "1m",
}
