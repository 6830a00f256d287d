package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"
)

// RegistryOptions configures StartRegistry.
type RegistryOptions struct {
	// Auth turns on htpasswd basic auth with a generated user and password.
	Auth bool
	// NotifyURL, when set, receives the registry's webhook notifications (the distribution
	// notification envelope), with NotifyHeaders on every request.
	NotifyURL     string
	NotifyHeaders map[string]string
}

// Registry is a running registry on loopback.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host     string
	Username string // empty without auth
	Password string
	Dir      string // config, storage and log

	proc *process
}

// StartRegistry starts Debian's docker-registry (the CNCF distribution server) in dir.
func StartRegistry(ctx context.Context, dir string, opts RegistryOptions) (*Registry, error) {
	bin, err := binary("docker-registry", "/usr/bin/docker-registry")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version: 0.1\nlog:\n  level: info\n  formatter: text\n")
	fmt.Fprintf(&cfg, "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n", filepath.Join(dir, "data"))
	fmt.Fprintf(&cfg, "http:\n  addr: %s\n  secret: %s\n", r.Host, randomHex(16))
	if opts.Auth {
		r.Username, r.Password = "imagebot", randomHex(12)
		hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(r.Username+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		fmt.Fprintf(&cfg, "auth:\n  htpasswd:\n    realm: imagebot-test\n    path: %s\n", htpasswd)
	}
	if opts.NotifyURL != "" {
		fmt.Fprintf(&cfg, "notifications:\n  endpoints:\n  - name: test\n    url: %q\n    timeout: 2s\n    threshold: 5\n    backoff: 200ms\n", opts.NotifyURL)
		if len(opts.NotifyHeaders) > 0 {
			fmt.Fprintf(&cfg, "    headers:\n")
			for k, v := range opts.NotifyHeaders {
				fmt.Fprintf(&cfg, "      %q: [%q]\n", k, v)
			}
		}
	}
	cfgPath := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		return nil, err
	}
	r.proc, err = startProcess(dir, "registry", bin, "serve", cfgPath)
	if err != nil {
		return nil, err
	}
	err = r.proc.waitFor(ctx, "registry ready on "+r.Host, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Host+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// Stop stops the registry.
func (r *Registry) Stop() {
	if r.proc != nil {
		r.proc.stop(5 * time.Second)
	}
}

// Pids returns the process ids this registry started.
func (r *Registry) Pids() []int { return []int{r.proc.Pid()} }

// Auth returns the credentials to use with go-containerregistry (anonymous without auth).
func (r *Registry) Auth() authn.Authenticator {
	if r.Username == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.Username, Password: r.Password}
}

// Ref returns "HOST/repo:tag" parsed for this plain-HTTP registry.
func (r *Registry) Ref(repo, tag string) (name.Reference, error) {
	return name.ParseReference(r.Host+"/"+repo+":"+tag, name.Insecure)
}

// ImageSpec describes an image to push.
type ImageSpec struct {
	Created   time.Time     // the config's created time; zero leaves random's default
	Platforms []v1.Platform // more than one makes a multi-arch index; none means linux/amd64
	// PlatformCreated gives one platform's image its own created time, keyed by
	// v1.Platform.String() ("linux/arm64", "linux/arm/v7"); platforms not in it get Created.
	PlatformCreated map[string]time.Time
}

// created is the created time of p's image.
func (s ImageSpec) created(p v1.Platform) time.Time {
	if t, ok := s.PlatformCreated[p.String()]; ok {
		return t
	}
	return s.Created
}

// Push pushes a small random image (or index, when spec names several platforms) as
// repo:tag and returns its digest.
func (r *Registry) Push(ctx context.Context, repo, tag string, spec ImageSpec) (v1.Hash, error) {
	return PushImage(ctx, r.Host, r.Auth(), repo, tag, spec)
}

// PushImage pushes a random image or index to host/repo:tag over plain HTTP; see ImageSpec.
func PushImage(ctx context.Context, host string, auth authn.Authenticator, repo, tag string, spec ImageSpec) (v1.Hash, error) {
	ref, err := name.ParseReference(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s/%s:%s: %w", host, repo, tag, err)
	}
	opts := []remote.Option{remote.WithAuth(auth), remote.WithContext(ctx)}
	platforms := spec.Platforms
	if len(platforms) == 0 {
		platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}}
	}
	if len(platforms) == 1 {
		img, err := makeImage(platforms[0], spec.created(platforms[0]))
		if err != nil {
			return v1.Hash{}, err
		}
		if err := remote.Write(ref, img, opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
		}
		return img.Digest()
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img, err := makeImage(p, spec.created(p))
		if err != nil {
			return v1.Hash{}, err
		}
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	if err := remote.WriteIndex(ref, idx, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push index %s: %w", ref, err)
	}
	return idx.Digest()
}

func makeImage(p v1.Platform, created time.Time) (v1.Image, error) {
	img, err := random.Image(64, 1)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	if !created.IsZero() {
		cf.Created = v1.Time{Time: created}
	}
	return mutate.ConfigFile(img, cf)
}

// StartInProcessRegistry serves go-containerregistry's in-memory registry on loopback for
// fast tests and returns its host ("127.0.0.1:PORT") and a stop function.
func StartInProcessRegistry() (host string, stop func()) {
	srv := httptest.NewServer(registry.New(registry.Logger(discardLogger())))
	return strings.TrimPrefix(srv.URL, "http://"), srv.Close
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}
