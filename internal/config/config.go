package config

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// APIVersion and Kind identify a repository config file.
const (
	APIVersion = "imagebot.dev/v1alpha1"
	Kind       = "Repository"
)

// Repository is one repository's config file.
type Repository struct {
	APIVersion string   `yaml:"apiVersion" json:"apiVersion"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metadata   Metadata `yaml:"metadata" json:"metadata"`
	Spec       Spec     `yaml:"spec" json:"spec"`

	// File is where the config was read from (not part of the file).
	File string `yaml:"-" json:"-"`
}

// Metadata names the repository.
type Metadata struct {
	// Name identifies the repository in logs, metrics, the status API, the data dir and
	// the cluster inventory. Lower-case letters, digits and '-', at most 63 characters.
	Name string `yaml:"name" json:"name"`
}

// Spec is what to automate and how.
type Spec struct {
	Git        Git               `yaml:"git" json:"git"`
	Scan       Scan              `yaml:"scan" json:"scan"`
	Registries []Registry        `yaml:"registries" json:"registries"`
	Images     Images            `yaml:"images" json:"images"`
	Markers    map[string]Marker `yaml:"markers" json:"markers"`
	Sync       Sync              `yaml:"sync" json:"sync"`
	// Notifications are webhooks told about updates and failures.
	Notifications []Notification `yaml:"notifications" json:"notifications"`
}

// Notification is a webhook told about updates and failures (see internal/notify).
type Notification struct {
	// URLFile holds the webhook URL (a Slack incoming-webhook URL is a secret).
	URLFile string `yaml:"urlFile" json:"urlFile"`
	// Slack sends {"text": …} rendered from Template; otherwise the event as JSON.
	Slack    bool     `yaml:"slack" json:"slack"`
	Events   []string `yaml:"events" json:"events"` // update, push-failed, sync-failed; empty: all
	Template string   `yaml:"template" json:"template"`
	Burst    int      `yaml:"burst" json:"burst"`       // default 5
	Interval Duration `yaml:"interval" json:"interval"` // one event per interval after the burst; default 1m
}

// Git is the repository, its branch and how to reach it.
type Git struct {
	URL        string   `yaml:"url" json:"url"`               // ssh://, https:// or a local path
	Branch     string   `yaml:"branch" json:"branch"`         // default "main"
	PushBranch string   `yaml:"pushBranch" json:"pushBranch"` // default: Branch
	Paths      []string `yaml:"paths" json:"paths"`           // default: the whole repository
	Interval   Duration `yaml:"interval" json:"interval"`     // poll; default 1m
	Depth      int      `yaml:"depth" json:"depth"`           // > 0: shallow mirror
	Timeout    Duration `yaml:"timeout" json:"timeout"`       // per fetch or push; default 60s
	Auth       GitAuth  `yaml:"auth" json:"auth"`
	Commit     Commit   `yaml:"commit" json:"commit"`
	// PushOptions are git push options (-o key=value).
	PushOptions map[string]string `yaml:"pushOptions" json:"pushOptions"`
}

// GitAuth names the files holding credentials (never the credentials themselves).
type GitAuth struct {
	SSHKeyFile            string `yaml:"sshKeyFile" json:"sshKeyFile"`
	SSHKeyPassphraseFile  string `yaml:"sshKeyPassphraseFile" json:"sshKeyPassphraseFile"`
	SSHUser               string `yaml:"sshUser" json:"sshUser"` // default: the URL's user, else "git"
	KnownHostsFile        string `yaml:"knownHostsFile" json:"knownHostsFile"`
	InsecureIgnoreHostKey bool   `yaml:"insecureIgnoreHostKey" json:"insecureIgnoreHostKey"`
	Username              string `yaml:"username" json:"username"`         // HTTPS
	PasswordFile          string `yaml:"passwordFile" json:"passwordFile"` // HTTPS password or token
	CAFile                string `yaml:"caFile" json:"caFile"`             // HTTPS: a private CA's PEM
}

// Commit is how imagebot commits.
type Commit struct {
	AuthorName               string `yaml:"authorName" json:"authorName"`
	AuthorEmail              string `yaml:"authorEmail" json:"authorEmail"`
	CommitterName            string `yaml:"committerName" json:"committerName"`
	CommitterEmail           string `yaml:"committerEmail" json:"committerEmail"`
	MessageTemplate          string `yaml:"messageTemplate" json:"messageTemplate"`
	CISkip                   bool   `yaml:"ciSkip" json:"ciSkip"`
	SignOff                  bool   `yaml:"signOff" json:"signOff"`
	SigningKeyFile           string `yaml:"signingKeyFile" json:"signingKeyFile"` // armored OpenPGP private key
	SigningKeyPassphraseFile string `yaml:"signingKeyPassphraseFile" json:"signingKeyPassphraseFile"`
}

// Scan is how registries are polled for this repository's images.
type Scan struct {
	Interval Duration `yaml:"interval" json:"interval"` // default 5m
	Platform string   `yaml:"platform" json:"platform"` // whose build time counts in a multi-arch index; default linux/amd64
	TagCap   int      `yaml:"tagCap" json:"tagCap"`     // most tags per repository; default 50000
}

// Registry is the settings of one registry host.
type Registry struct {
	Host             string  `yaml:"host" json:"host"` // "registry.example.com", "127.0.0.1:5000"
	DockerConfigFile string  `yaml:"dockerConfigFile" json:"dockerConfigFile"`
	RPS              float64 `yaml:"rps" json:"rps"`
	Burst            int     `yaml:"burst" json:"burst"`
	Insecure         bool    `yaml:"insecure" json:"insecure"` // plain HTTP
	CAFile           string  `yaml:"caFile" json:"caFile"`
	PageSize         int     `yaml:"pageSize" json:"pageSize"`
}

// Images narrows which images are automated and how often each is scanned.
type Images struct {
	Include   []string        `yaml:"include" json:"include"` // globs over "host/repo" (see MatchImage); empty: all
	Exclude   []string        `yaml:"exclude" json:"exclude"`
	Intervals []ImageInterval `yaml:"intervals" json:"intervals"`
}

// ImageInterval overrides the scan interval for images matching a glob.
type ImageInterval struct {
	Image    string   `yaml:"image" json:"image"`
	Interval Duration `yaml:"interval" json:"interval"`
}

// Marker resolves a Flux v2 "$imagepolicy" marker name ("namespace:name").
type Marker struct {
	Image  string `yaml:"image" json:"image"`
	Policy string `yaml:"policy" json:"policy"`
}

// Sync is the built-in reconciler's settings.
type Sync struct {
	Enabled          *bool    `yaml:"enabled" json:"enabled"` // default true
	Prune            *bool    `yaml:"prune" json:"prune"`     // default true
	DefaultNamespace string   `yaml:"defaultNamespace" json:"defaultNamespace"`
	Interval         Duration `yaml:"interval" json:"interval"`           // full reconcile backstop; default 5m
	HealthTimeout    Duration `yaml:"healthTimeout" json:"healthTimeout"` // default 2m
	// MaxPruneFraction refuses a prune that would delete more than this share of the
	// inventory at once (default 0.5; 1 turns the guard off).
	MaxPruneFraction float64 `yaml:"maxPruneFraction" json:"maxPruneFraction"`
	// PruneKinds lets prune delete these kinds, which it otherwise never deletes (their
	// deletion loses data): Namespace, PersistentVolumeClaim, CustomResourceDefinition.
	PruneKinds []string `yaml:"pruneKinds" json:"pruneKinds"`
}

// ProtectedKinds are the kinds PruneKinds may name.
var ProtectedKinds = []string{"Namespace", "PersistentVolumeClaim", "CustomResourceDefinition"}

// Duration is a time.Duration written as "90s", "5m", "1h30m".
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as \"5m\": %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (examples: \"90s\", \"5m\", \"1h30m\")", n.Line, s)
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %q is negative", n.Line, s)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Or returns d, or def when d is zero.
func (d Duration) Or(def time.Duration) time.Duration {
	if d.Duration == 0 {
		return def
	}
	return d.Duration
}

// MatchImage reports whether an image repository ("host/path") matches a glob of
// spec.images: "*" matches any run of characters ("/" included), "?" any one character.
// Docker Hub's repositories, named "index.docker.io/…" once parsed, match as "docker.io/…"
// too, the way people write them.
func MatchImage(glob, repo string) bool {
	if rest, ok := strings.CutPrefix(repo, "index.docker.io/"); ok && matchGlob(glob, "docker.io/"+rest) {
		return true
	}
	return matchGlob(glob, repo)
}

func matchGlob(glob, repo string) bool {
	for len(glob) > 0 {
		switch glob[0] {
		case '*':
			for i := len(repo); i >= 0; i-- {
				if matchGlob(glob[1:], repo[i:]) {
					return true
				}
			}
			return false
		case '?':
			if repo == "" {
				return false
			}
		default:
			if repo == "" || repo[0] != glob[0] {
				return false
			}
		}
		glob, repo = glob[1:], repo[1:]
	}
	return repo == ""
}
