package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/policy"
	"imagebot.dev/imagebot/internal/update"
)

func newPlan() *cobra.Command {
	var dir, configFile, repository string
	cmd := &cobra.Command{
		Use:   "plan [--path DIR] [--config FILE [--repository NAME]]",
		Short: "Show, as a diff, what the next cycle would commit in a checkout (scans the registries)",
		Long: `Show, as a diff, what the next cycle would commit in a checkout: each automated
container's image repository is scanned and its policy applied. Stderr has the config used
and each container's reason.

A scan that fails (the registry answers 401, 404 or 429, times out, or sends something
unusable) is named on stderr with the workload, container, image and reason; the diff still
shows what the other scans decided, and plan exits with code 5. "nothing to change" means
every scan succeeded; with failed scans it says "nothing to change among the images
scanned; N scan(s) failed".

Exit codes: 0 the diff (or nothing to change), 5 a scan failed, 1 any other error, 2 bad
flags, 3 no such --repository in --config.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			co, err := loadCheckout(configFile, repository)
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			co.progress = stderr
			fmt.Fprintln(stderr, co.describe())
			res, err := co.finder.Find(cmd.Context(), dir)
			if err != nil {
				return err
			}
			for _, p := range res.Problems {
				fmt.Fprintln(stderr, "warning:", p.Error())
			}
			var ds []update.Decision
			for _, t := range res.Targets {
				if !bot.Automatable(t) {
					continue
				}
				if why := co.excluded(t); why != "" {
					fmt.Fprintf(stderr, "%s %s: skipped: %s\n", t.Workload, t.Container, why)
					continue
				}
				c, err := co.choose(cmd.Context(), t)
				if err != nil {
					if !reportScanError(stderr, t, err) {
						fmt.Fprintf(stderr, "%s %s: %v\n", t.Workload, t.Container, err)
					}
					continue
				}
				fmt.Fprintf(stderr, "%s %s: %s\n", t.Workload, t.Container, c.Result.Reason)
				if c.Result.Changed {
					ds = append(ds, update.Decision{Target: t, Image: c.Next})
				}
			}
			return showOrApply(cmd, co, dir, ds, true)
		},
	}
	cmd.Flags().StringVar(&dir, "path", ".", "the checkout")
	configFlag(cmd, &configFile)
	repositoryFlag(cmd, &repository)
	return cmd
}

// showOrApply prints the diff of decisions (dryRun) or writes them to the checkout. When
// some of co's scans failed it says so instead of "nothing to change", and returns a
// scansFailedError (exit code 5) after showing or making the decisions of the others.
func showOrApply(cmd *cobra.Command, co *checkout, dir string, ds []update.Decision, dryRun bool) error {
	var failed error
	if co.failed > 0 {
		failed = scansFailedError{failed: co.failed, scans: co.scans}
	}
	if len(ds) == 0 {
		if co.failed > 0 {
			fmt.Fprintf(cmd.OutOrStdout(), "nothing to change among the images scanned; %s\n", scansFailed(co.failed))
		} else {
			fmt.Fprintln(cmd.OutOrStdout(), "nothing to change")
		}
		return failed
	}
	if !dryRun {
		cs, err := co.finder.Apply(cmd.Context(), dir, ds)
		if err != nil {
			return err
		}
		for _, c := range cs.Changes {
			fmt.Fprintln(cmd.OutOrStdout(), c.String())
		}
		return failed
	}
	diff, _, err := bot.Preview(co.finder, dir, ds)
	if err != nil {
		return err
	}
	if _, err = io.WriteString(cmd.OutOrStdout(), diff); err != nil {
		return err
	}
	return failed
}

// scansFailedError: some of a command's registry scans failed (exit code 5). Each was named
// on stderr as it failed; the containers they were for are left as they are.
type scansFailedError struct{ failed, scans int }

func (e scansFailedError) Error() string {
	return fmt.Sprintf("%d of %d scans failed (named above): their containers are left as they are", e.failed, e.scans)
}

// scansFailed is "1 scan failed" or "N scans failed".
func scansFailed(n int) string {
	if n == 1 {
		return "1 scan failed"
	}
	return fmt.Sprintf("%d scans failed", n)
}

// reportScanError names a failed scan of t's image on w (workload, container, image
// repository, the registry's error) and says true; for any other error it says false.
func reportScanError(w io.Writer, t update.Target, err error) bool {
	var se *scanError
	if !errors.As(err, &se) {
		return false
	}
	fmt.Fprintf(w, "%s %s: image %s: scan failed: %v\n", t.Workload, t.Container, se.repo, se.err)
	return true
}

// chooseReporting is co.choose for a release: a failed scan is named on w and the container
// keeps its image (a Choice that changes nothing), so the workload's other containers are
// still released; showOrApply then ends with a scansFailedError. Other errors (an image the
// config leaves out) end the release, as before.
func chooseReporting(co *checkout, w io.Writer) bot.Chooser {
	co.progress = w
	return func(ctx context.Context, t update.Target) (*bot.Choice, error) {
		c, err := co.choose(ctx, t)
		if err != nil && reportScanError(w, t, err) {
			return &bot.Choice{Result: policy.Result{Reason: "scan failed"}}, nil
		}
		return c, err
	}
}

func newRelease() *cobra.Command {
	var workload, image, container string
	var all, dryRun, force bool
	var where editTarget
	cmd := &cobra.Command{
		Use:   "release -w WORKLOAD (--update-image IMAGE | --update-all-images) [--dry-run]",
		Short: "Set a workload's images: to a given image, or to what each policy picks (in a checkout, or through the daemon)",
		Long: `Set a workload's images: to a given image (--update-image), or to what each container's
policy picks now (--update-all-images). Through the daemon (--daemon, or $IMAGEBOT_URL without
--path) the daemon's bot commits and pushes the edit, choosing from its latest scans; on a
local checkout (--path) the files are edited (or diffed with --dry-run) and
--update-all-images scans the registries.

On a checkout, a scan of --update-all-images that fails (401, 404, 429, a timeout, a bad
response) is named on stderr with the workload, container, image and reason; that container
keeps its image, the others are still released (or diffed), and release exits with code 5.

Exit codes: 0 done (or nothing to change), 5 a scan failed (checkout), 1 any other error,
2 bad flags (or the daemon said 400), 3 no such repository, workload or container (404),
4 the workload is locked or declared twice (409).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if workload == "" {
				return usagef("give --workload")
			}
			w, err := parseWorkload(workload)
			if err != nil {
				return err
			}
			if (image == "") == !all {
				return usagef("give exactly one of --update-image and --update-all-images")
			}
			var want name.Reference
			if image != "" {
				if want, err = name.ParseReference(image); err != nil {
					return usagef("--update-image %q: %w", image, err)
				}
			}
			remote, err := where.remote(cmd)
			if err != nil {
				return err
			}
			if remote {
				return where.post(cmd, "/api/v1/release", daemon.ReleaseRequest{Repository: where.repository, Workload: workload,
					Container: container, Image: image, AllImages: all, DryRun: dryRun, Force: force, User: where.user})
			}
			co, err := where.checkout()
			if err != nil {
				return err
			}
			res, err := co.finder.Find(cmd.Context(), where.dir)
			if err != nil {
				return err
			}
			rel := bot.Release{Workload: w, Container: container, Image: want, Force: force}
			ds, err := rel.Decide(cmd.Context(), res.Targets, chooseReporting(co, cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			return showOrApply(cmd, co, where.dir, ds, dryRun)
		},
	}
	where.flags(cmd)
	f := cmd.Flags()
	f.StringVarP(&workload, "workload", "w", "", "the workload: Kind/namespace/name, namespace/name or name")
	f.StringVarP(&image, "update-image", "i", "", "the image to run, e.g. registry.example.com/team/app:v1.2.3")
	f.StringVar(&container, "container", "", "only this container")
	f.BoolVar(&all, "update-all-images", false, "set every container to what its policy picks now (a scan; the daemon's latest scan through the daemon)")
	f.BoolVar(&dryRun, "dry-run", false, "show the diff, change nothing")
	f.BoolVar(&force, "force", false, "release onto a locked workload")
	return cmd
}
