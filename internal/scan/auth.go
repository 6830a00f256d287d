package scan

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Credentials is a keychain with an identity. Scans of one repository with the same ID share
// one listing per cycle and one auth session; a different ID is a different credential set
// and lists separately (another account may see other tags).
type Credentials struct {
	// ID names the credential set; "" is the Scanner's default keychain. Constructors in
	// this package derive it from the credentials' content (a keyed hash that cannot be
	// reversed or checked offline), so equal secrets share listings.
	ID       string
	Keychain authn.Keychain
}

// KeychainProvider is the seam between the scanner and the cluster: the daemon implements
// it over the Kubernetes API (with an informer cache), reading the workload's
// imagePullSecrets and its service account's, and building Credentials with
// SecretsCredentials. The scan package itself does not import client-go.
type KeychainProvider interface {
	Credentials(ctx context.Context, w Workload) (Credentials, error)
}

// Workload names what a KeychainProvider needs to find a workload's pull secrets.
type Workload struct {
	Namespace      string
	ServiceAccount string   // "" means "default"
	PullSecrets    []string // the pod template's imagePullSecrets names
}

// Secret carries the fields of a Kubernetes Secret that hold registry credentials.
type Secret struct {
	Namespace, Name string
	// Type is "kubernetes.io/dockerconfigjson" (Data[".dockerconfigjson"]) or
	// "kubernetes.io/dockercfg" (Data[".dockercfg"], the legacy format without "auths").
	Type string
	Data map[string][]byte
}

// Secret types with registry credentials.
const (
	SecretTypeDockerConfigJSON = "kubernetes.io/dockerconfigjson"
	SecretTypeDockercfg        = "kubernetes.io/dockercfg"
)

// SecretsCredentials builds Credentials from image pull secrets, in the order Kubernetes
// tries them (the workload's, then its service account's). Secrets of other types are
// ignored. Errors name the secret and field, never a value.
func SecretsCredentials(secrets ...Secret) (Credentials, error) {
	var entries []authEntry
	for _, s := range secrets {
		var data []byte
		legacy := false
		switch s.Type {
		case SecretTypeDockerConfigJSON:
			data = s.Data[".dockerconfigjson"]
		case SecretTypeDockercfg:
			data, legacy = s.Data[".dockercfg"], true
		default:
			continue
		}
		e, err := parseDockerConfig(data, legacy)
		if err != nil {
			return Credentials{}, fmt.Errorf("secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		entries = append(entries, e...)
	}
	kc := newConfigKeychain(entries)
	return Credentials{ID: kc.id, Keychain: kc}, nil
}

// DockerConfigFile returns Credentials read from a Docker config.json ("auths" with "auth",
// "username"/"password", "identitytoken" or "registrytoken"). The file is read again when
// it changes. Credential helpers ("credsStore", "credHelpers") are not run: they need
// programs the daemon's image does not ship; use the cloud keychains instead.
func DockerConfigFile(file string) (Credentials, error) {
	kc := &fileKeychain{path: file}
	if err := kc.load(); err != nil {
		return Credentials{}, err
	}
	return Credentials{ID: "file:" + file, Keychain: kc}, nil
}

// authEntry is one "auths" key: a host glob with optional port and path prefix.
type authEntry struct {
	host, port, path string
	cfg              authn.AuthConfig
}

// parseDockerConfig reads {"auths": {KEY: {...}}} (or, legacy, {KEY: {...}}).
func parseDockerConfig(data []byte, legacy bool) ([]authEntry, error) {
	var auths map[string]json.RawMessage
	if legacy {
		if err := json.Unmarshal(data, &auths); err != nil {
			return nil, fmt.Errorf(".dockercfg: not a JSON object of registries")
		}
	} else {
		var doc struct {
			Auths map[string]json.RawMessage `json:"auths"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("docker config: not JSON with an \"auths\" object")
		}
		auths = doc.Auths
	}
	keys := make([]string, 0, len(auths))
	for k := range auths {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic order (and ID) within one config
	entries := make([]authEntry, 0, len(auths))
	for _, key := range keys {
		raw := auths[key]
		var a struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
			RegistryToken string `json:"registrytoken"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("auths[%q]: not a JSON object of credentials", key)
		}
		cfg := authn.AuthConfig{Username: a.Username, Password: a.Password,
			IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
		if a.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			user, pass, ok := strings.Cut(string(dec), ":")
			if err != nil || !ok {
				return nil, fmt.Errorf("auths[%q].auth: not base64 of user:password", key)
			}
			cfg.Username, cfg.Password = user, pass
		}
		e, err := parseAuthKey(key)
		if err != nil {
			return nil, err
		}
		e.cfg = cfg
		entries = append(entries, e)
	}
	return entries, nil
}

// parseAuthKey reads a config key as the kubelet does: an optional scheme, a host that may
// hold "*" globs per label, an optional port, an optional path prefix.
func parseAuthKey(key string) (authEntry, error) {
	k := key
	if i := strings.Index(k, "://"); i >= 0 {
		k = k[i+3:]
	}
	hostport, p, _ := strings.Cut(k, "/")
	host, port, _ := strings.Cut(hostport, ":")
	host = strings.ToLower(host)
	if host == "" {
		return authEntry{}, fmt.Errorf("auths[%q]: no registry host", key)
	}
	switch host { // Docker Hub's aliases
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		host = name.DefaultRegistry
		p = strings.TrimPrefix(strings.TrimPrefix(p, "v1"), "v2")
	}
	return authEntry{host: host, port: port, path: strings.Trim(p, "/")}, nil
}

func (e authEntry) matches(host, port, repoPath string) bool {
	if e.port != port {
		return false
	}
	want, got := strings.Split(e.host, "."), strings.Split(host, ".")
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if ok, _ := path.Match(want[i], got[i]); !ok {
			return false
		}
	}
	return e.path == "" || repoPath == e.path || strings.HasPrefix(repoPath, e.path+"/")
}

// configKeychain resolves from parsed entries: the most specific match wins (exact host
// before globs, longer path first), then the first given.
type configKeychain struct {
	entries []authEntry
	id      string
}

var idKey = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}()

func newConfigKeychain(entries []authEntry) *configKeychain {
	sort.SliceStable(entries, func(i, j int) bool {
		gi, gj := strings.Contains(entries[i].host, "*"), strings.Contains(entries[j].host, "*")
		if gi != gj {
			return !gi
		}
		return len(entries[i].path) > len(entries[j].path)
	})
	mac := hmac.New(sha256.New, idKey)
	for _, e := range entries {
		fmt.Fprintf(mac, "%q %q %q %q %q %q %q\n", e.host, e.port, e.path, e.cfg.Username, e.cfg.Password,
			e.cfg.IdentityToken, e.cfg.RegistryToken)
	}
	return &configKeychain{entries: entries, id: "secrets:" + hex.EncodeToString(mac.Sum(nil)[:12])}
}

func (k *configKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	host, port, _ := strings.Cut(strings.ToLower(target.RegistryStr()), ":")
	repoPath := ""
	if r, ok := target.(name.Repository); ok {
		repoPath = r.RepositoryStr()
	}
	for _, e := range k.entries {
		if e.matches(host, port, repoPath) {
			return authn.FromConfig(e.cfg), nil
		}
	}
	return authn.Anonymous, nil
}

// fileKeychain is a configKeychain reloaded when its file's modification time changes.
type fileKeychain struct {
	path string

	mu    sync.Mutex
	mtime time.Time
	kc    *configKeychain
}

func (f *fileKeychain) load() error {
	fi, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("docker config %s: %w", f.path, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.kc != nil && fi.ModTime().Equal(f.mtime) {
		return nil
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("docker config %s: %w", f.path, err)
	}
	entries, err := parseDockerConfig(data, false)
	if err != nil {
		return fmt.Errorf("docker config %s: %w", f.path, err)
	}
	f.kc, f.mtime = newConfigKeychain(entries), fi.ModTime()
	return nil
}

func (f *fileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if err := f.load(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	kc := f.kc
	f.mu.Unlock()
	return kc.Resolve(target)
}
