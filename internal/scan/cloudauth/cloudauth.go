// Package cloudauth provides keychains for the cloud registries from the credentials their
// platforms give a workload, with no extra daemon or binary:
//
//   - Amazon ECR (ACCOUNT.dkr.ecr.REGION.amazonaws.com, FIPS and China partitions): the AWS
//     SDK's default chain, through amazon-ecr-credential-helper's ecr-login library: IRSA
//     (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE), EKS Pod Identity, AWS_ACCESS_KEY_ID /
//     AWS_SECRET_ACCESS_KEY, a shared config/credentials file (AWS_PROFILE), or the EC2
//     instance role. The region comes from the registry host. ECR Public is not covered
//     (it needs no credentials to pull).
//   - Google Container Registry and Artifact Registry (gcr.io, *.gcr.io, *.pkg.dev):
//     go-containerregistry's google.Keychain: Application Default Credentials
//     (GOOGLE_APPLICATION_CREDENTIALS, GKE Workload Identity, the metadata server), else a
//     gcloud binary if the image has one.
//   - Azure Container Registry (*.azurecr.io, .cn, .de, .us): docker-credential-acr-env's
//     library: a service principal (AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET
//     or a certificate) or Azure Workload Identity (AZURE_FEDERATED_TOKEN_FILE), exchanged
//     for an ACR refresh token. Managed identity through IMDS without workload identity is
//     not covered.
//
// Each keychain answers only for its own hosts (anonymous elsewhere, without calling its
// cloud), so Keychain combines them safely with others in authn.NewMultiKeychain.
// Credentials are cached per registry host for TTL (default 1h; ECR tokens live 12h, ACR
// refresh tokens about 3h), and a failure to get them is anonymous access, not an error:
// the registry's 401 then says what is wrong, and no provider logs (their loggers are
// silenced).
//
// This package is separate from scan so that scan does not carry the AWS and Azure SDKs;
// internal/repoconfig adds it to the scanner's Options.Keychain (for the daemon and the CLI).
package cloudauth

import (
	"io"
	"regexp"
	"sync"
	"time"

	ecr "github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
	"github.com/awslabs/amazon-ecr-credential-helper/ecr-login/api"
	acr "github.com/chrismellard/docker-credential-acr-env/pkg/credhelper"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/google"
)

// DefaultTTL is how long credentials are reused per registry host.
const DefaultTTL = time.Hour

// Keychain returns the ECR, Google and ACR keychains combined.
func Keychain() authn.Keychain {
	return authn.NewMultiKeychain(ECR(), Google(), Azure())
}

// ECR returns the Amazon ECR keychain.
func ECR() authn.Keychain {
	h := ecr.NewECRHelper(ecr.WithLogger(io.Discard))
	return newCached(func(host string) bool { _, err := api.ExtractRegistry(host); return err == nil },
		authn.NewKeychainFromHelper(h), DefaultTTL)
}

// Google returns the GCR / Artifact Registry keychain.
func Google() authn.Keychain {
	return newCached(isGoogle, google.Keychain, DefaultTTL)
}

var acrHost = regexp.MustCompile(`^[a-z0-9-]+\.azurecr\.(io|cn|de|us)$`)

// Azure returns the ACR keychain.
func Azure() authn.Keychain {
	return newCached(acrHost.MatchString, authn.NewKeychainFromHelper(acr.NewACRCredentialsHelper()), DefaultTTL)
}

var googleHost = regexp.MustCompile(`^([a-z0-9-]+\.)?gcr\.io$|^[a-z0-9-]+\.pkg\.dev$`)

func isGoogle(host string) bool { return googleHost.MatchString(host) }

// cached resolves hosts it serves through inner, reusing the answer for ttl.
type cached struct {
	serves func(host string) bool
	inner  authn.Keychain
	ttl    time.Duration
	now    func() time.Time

	mu sync.Mutex
	m  map[string]entry
}

type entry struct {
	auth authn.Authenticator
	at   time.Time
}

func newCached(serves func(string) bool, inner authn.Keychain, ttl time.Duration) *cached {
	return &cached{serves: serves, inner: inner, ttl: ttl, now: time.Now, m: map[string]entry{}}
}

func (c *cached) Resolve(target authn.Resource) (authn.Authenticator, error) {
	host := target.RegistryStr()
	if !c.serves(host) {
		return authn.Anonymous, nil
	}
	c.mu.Lock()
	e, ok := c.m[host]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < c.ttl {
		return e.auth, nil
	}
	a, err := c.inner.Resolve(target)
	if err != nil || a == nil {
		return authn.Anonymous, nil // no credentials here: try anonymously, the 401 tells
	}
	// Freeze the credentials: helpers fetch a new token on every Authorization call.
	cfg, err := a.Authorization()
	if err != nil || cfg == nil {
		return authn.Anonymous, nil
	}
	frozen := authn.FromConfig(*cfg)
	if *cfg == (authn.AuthConfig{}) {
		frozen = authn.Anonymous
	}
	c.mu.Lock()
	c.m[host] = entry{auth: frozen, at: c.now()}
	c.mu.Unlock()
	return frozen, nil
}
