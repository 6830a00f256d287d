package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/config"
	"imagebot.dev/imagebot/internal/repoconfig"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/update"
)

// errNoRepository: --repository names no repository of the --config file (exit code 3).
var errNoRepository = errors.New("no such repository")

// checkout is how a command on a local checkout automates it: with --config as the daemon
// does for that repository (its Finder, image filter, credentials and scanner options, from
// repoconfig), else with the defaults (the whole checkout, every image, no $imagepolicy
// markers, the default Docker keychain).
type checkout struct {
	repo   *config.Repository // nil without --config
	finder *update.Finder
	creds  map[string]scan.Credentials
	opts   scan.Options
	sc     *scan.Scanner // made on the first scan
	// scans and failed count the registry scans choose made and those that failed.
	scans, failed int
	// progress, when set, is told how a long scan is getting on.
	progress io.Writer
}

// progressEvery is how often a scan's progress is written: nothing for a scan shorter.
const progressEvery = 2 * time.Second

// reportProgress returns a scan.Need.Progress that writes "scanning REPO: described N of
// M tags" to w every progressEvery while a scan lasts.
func reportProgress(w io.Writer, repo string) func(scan.Progress) {
	next := time.Now().Add(progressEvery)
	return func(p scan.Progress) {
		if now := time.Now(); now.After(next) {
			next = now.Add(progressEvery)
			fmt.Fprintf(w, "scanning %s: %s\n", repo, p)
		}
	}
}

// scanError is a failed scan of a target's image repository: the registry's error
// (scan.Scan's: 401, 404, 429, a timeout, a bad response), as opposed to a policy or a
// config that refuses the image. A command goes on with the other targets and ends with
// a scansFailedError (exit code 5).
type scanError struct {
	repo string // the image repository, e.g. registry.example.com/team/app
	err  error
}

func (e *scanError) Error() string { return e.err.Error() }
func (e *scanError) Unwrap() error { return e.err }

// configFlag adds --config to cmd.
func configFlag(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVar(file, "config", "", "read the checkout as the daemon does with this repository config (a file or directory, as imagebot run takes): spec.git.paths, spec.markers, spec.images, spec.registries, spec.scan")
}

// repositoryFlag adds --repository to a command that has --config only.
func repositoryFlag(cmd *cobra.Command, repository *string) {
	cmd.Flags().StringVar(repository, "repository", "", "with --config: the repository to use (needed when the config holds several)")
}

// loadCheckout reads the config file (if any) and picks the repository named (needed
// when it holds several).
func loadCheckout(file, repository string) (*checkout, error) {
	if file == "" {
		if repository != "" {
			return nil, usagef("--repository needs --config")
		}
		opts, err := repoconfig.ScanOptions() // no registry settings: the Docker and cloud keychains
		return &checkout{finder: &update.Finder{}, opts: opts}, err
	}
	repos, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	var names []string
	var r *config.Repository
	for _, c := range repos {
		names = append(names, c.Metadata.Name)
		if c.Metadata.Name == repository || repository == "" && len(repos) == 1 {
			r = c
		}
	}
	switch {
	case r == nil && repository == "":
		return nil, usagef("--config %s holds %d repositories (%s): pick one with --repository", file, len(repos), strings.Join(names, ", "))
	case r == nil:
		return nil, fmt.Errorf("--config %s: %w %q (it has %s)", file, errNoRepository, repository, strings.Join(names, ", "))
	}
	creds, err := repoconfig.Credentials(r)
	if err != nil {
		return nil, fmt.Errorf("--config %s: repository %s: %w", file, r.Metadata.Name, err)
	}
	// The daemon's scanner takes the registry settings of every repository it runs.
	opts, err := repoconfig.ScanOptions(repos...)
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", file, err)
	}
	return &checkout{repo: r, finder: repoconfig.Finder(r), creds: creds, opts: opts}, nil
}

// describe says which config the command uses, for plan's header.
func (c *checkout) describe() string {
	if c.repo == nil {
		return "config: none (no --config): the whole checkout, every image, no $imagepolicy markers, the default Docker keychain"
	}
	s := c.repo.Spec
	parts := []string{"paths: whole checkout"}
	if len(s.Git.Paths) > 0 {
		parts[0] = fmt.Sprintf("paths: %s", strings.Join(s.Git.Paths, ", "))
	}
	if len(s.Images.Include) > 0 {
		parts = append(parts, fmt.Sprintf("images.include: %q", s.Images.Include))
	}
	if len(s.Images.Exclude) > 0 {
		parts = append(parts, fmt.Sprintf("images.exclude: %q", s.Images.Exclude))
	}
	parts = append(parts, fmt.Sprintf("markers: %d", len(s.Markers)))
	var hosts []string
	for _, reg := range s.Registries {
		h := reg.Host
		if reg.DockerConfigFile != "" {
			h += " (credentials)"
		}
		hosts = append(hosts, h)
	}
	if len(hosts) > 0 {
		parts = append(parts, "registries: "+strings.Join(hosts, ", "))
	}
	return fmt.Sprintf("config: repository %q from %s; %s", c.repo.Metadata.Name, c.repo.File, strings.Join(parts, "; "))
}

// excluded says why the config leaves t's image out of automation ("" when it does not,
// and always without --config).
func (c *checkout) excluded(t update.Target) string {
	if c.repo == nil {
		return ""
	}
	ref, err := name.ParseReference(t.Image)
	if err != nil {
		return ""
	}
	why := repoconfig.Excluded(c.repo.Spec.Images, ref.Context().Name())
	if why == "" {
		return ""
	}
	return ref.Context().Name() + " is " + why
}

// choose scans t's repository for what its policy needs, with the registry's credentials
// from the config when it has some, and applies the policy. An image the config leaves out
// is an error, as it is for the daemon (which does not scan it); a failed scan is a
// *scanError.
func (c *checkout) choose(ctx context.Context, t update.Target) (*bot.Choice, error) {
	if why := c.excluded(t); why != "" {
		return nil, fmt.Errorf("not automated: %s in %s (release a given image instead)", why, c.repo.File)
	}
	ref, err := name.ParseReference(t.Image)
	if err != nil {
		return nil, err
	}
	need, err := bot.Need(t)
	if err != nil {
		return nil, err
	}
	need.Credentials = c.creds[ref.Context().RegistryStr()]
	if c.repo != nil {
		need.TagCap = c.repo.Spec.Scan.TagCap
	}
	if c.sc == nil {
		c.sc = scan.New(c.opts)
	}
	if c.progress != nil {
		need.Progress = reportProgress(c.progress, ref.Context().Name())
	}
	// The scanner bounds the scan (spec.scan.timeout, default 5m): a big repository at
	// the default rate needs minutes the first time.
	c.scans++
	res, err := c.sc.Scan(ctx, ref.Context(), need)
	if err != nil {
		c.failed++
		return nil, &scanError{repo: ref.Context().Name(), err: err}
	}
	return bot.Choose(t, res, time.Now())
}
