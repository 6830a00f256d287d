package repoconfig

import (
	"fmt"
	"strconv"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"imagebot.dev/imagebot/internal/config"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/scan/cloudauth"
	"imagebot.dev/imagebot/internal/update"
)

// Finder is the Finder of the repository: it walks spec.git.paths (the whole checkout when
// there are none) and resolves $imagepolicy markers through spec.markers.
func Finder(r *config.Repository) *update.Finder {
	f := &update.Finder{Paths: r.Spec.Git.Paths, Markers: map[string]update.MarkerPolicy{}}
	for name, m := range r.Spec.Markers {
		f.Markers[name] = update.MarkerPolicy{Image: m.Image, Policy: m.Policy}
	}
	return f
}

// Include says whether an image repository ("host/path", as name.Repository.Name gives it)
// is automated under spec.images: it must match an include glob when there are any, and no
// exclude glob.
func Include(r *config.Repository) func(repo string) bool {
	images := r.Spec.Images
	return func(repo string) bool { return Excluded(images, repo) == "" }
}

// Excluded says why images leaves the image repository repo out of automation, or "" when
// it does not: `not matched by spec.images.include ["a/*" "b/*"]` or `matched by
// spec.images.exclude "docker.io/*"`.
func Excluded(images config.Images, repo string) string {
	if len(images.Include) > 0 {
		if _, ok := matchAny(images.Include, repo); !ok {
			return fmt.Sprintf("not matched by spec.images.include %q", images.Include)
		}
	}
	if g, ok := matchAny(images.Exclude, repo); ok {
		return "matched by spec.images.exclude " + strconv.Quote(g)
	}
	return ""
}

func matchAny(globs []string, repo string) (string, bool) {
	for _, g := range globs {
		if config.MatchImage(g, repo) {
			return g, true
		}
	}
	return "", false
}

// Credentials are the registry credentials of spec.registries[].dockerConfigFile, by host
// (bot.Options.Credentials). A host without a file is not in the map: its images are
// scanned with the scanner's Keychain.
func Credentials(r *config.Repository) (map[string]scan.Credentials, error) {
	creds := map[string]scan.Credentials{}
	for _, reg := range r.Spec.Registries {
		if reg.DockerConfigFile == "" {
			continue
		}
		c, err := scan.DockerConfigFile(reg.DockerConfigFile)
		if err != nil {
			return nil, err
		}
		creds[reg.Host] = c
	}
	return creds, nil
}

// ScanOptions are the scanner's options from the registry settings of repos: the default
// Docker keychain and the cloud registries' (scan/cloudauth: ECR, GCR/Artifact Registry,
// ACR, from the workload identity the platform gives the pod), spec.scan.platform, and per
// host of spec.registries its rate limit, page size and plain HTTP. (spec.scan.tagCap is
// per repository: it goes to each scan's Need.) When several repositories set the same thing the last one
// wins; the CA files of all of them are trusted (beside the system's). The caller adds what
// is not in a config (Cache, Metrics, timeouts).
func ScanOptions(repos ...*config.Repository) (scan.Options, error) {
	opts := scan.Options{Keychain: authn.NewMultiKeychain(authn.DefaultKeychain, cloudauth.Keychain()),
		Hosts: map[string]scan.HostOptions{}}
	var caFiles []string
	for _, r := range repos {
		if p := r.Spec.Scan.Platform; p != "" {
			if pl, err := v1.ParsePlatform(p); err == nil {
				opts.Platform = *pl
			}
		}
		for _, reg := range r.Spec.Registries {
			opts.Hosts[reg.Host] = scan.HostOptions{Limit: scan.Limit{RPS: reg.RPS, Burst: reg.Burst}, PageSize: reg.PageSize,
				Insecure: reg.Insecure}
			if reg.CAFile != "" {
				caFiles = append(caFiles, reg.CAFile)
			}
		}
	}
	if len(caFiles) > 0 {
		pool, err := scan.CertPool(caFiles...)
		if err != nil {
			return opts, fmt.Errorf("registries: %w", err)
		}
		opts.RootCAs = pool
	}
	return opts, nil
}
