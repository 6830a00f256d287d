package main

import (
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/update"
)

func newPlan() *cobra.Command {
	var dir, configFile, repository string
	cmd := &cobra.Command{
		Use:   "plan [--path DIR] [--config FILE [--repository NAME]]",
		Short: "Show, as a diff, what the next cycle would commit in a checkout (scans the registries)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			co, err := loadCheckout(configFile, repository)
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
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
					fmt.Fprintf(stderr, "%s %s: %v\n", t.Workload, t.Container, err)
					continue
				}
				fmt.Fprintf(stderr, "%s %s: %s\n", t.Workload, t.Container, c.Result.Reason)
				if c.Result.Changed {
					ds = append(ds, update.Decision{Target: t, Image: c.Next})
				}
			}
			return showOrApply(cmd, co.finder, dir, ds, true)
		},
	}
	cmd.Flags().StringVar(&dir, "path", ".", "the checkout")
	configFlag(cmd, &configFile)
	repositoryFlag(cmd, &repository)
	return cmd
}

// showOrApply prints the diff of decisions (dryRun) or writes them to the checkout.
func showOrApply(cmd *cobra.Command, f *update.Finder, dir string, ds []update.Decision, dryRun bool) error {
	if len(ds) == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), "nothing to change")
		return nil
	}
	if !dryRun {
		cs, err := f.Apply(cmd.Context(), dir, ds)
		if err != nil {
			return err
		}
		for _, c := range cs.Changes {
			fmt.Fprintln(cmd.OutOrStdout(), c.String())
		}
		return nil
	}
	diff, _, err := bot.Preview(f, dir, ds)
	if err != nil {
		return err
	}
	_, err = io.WriteString(cmd.OutOrStdout(), diff)
	return err
}

func newRelease() *cobra.Command {
	var workload, image, container string
	var all, dryRun, force bool
	var where editTarget
	cmd := &cobra.Command{
		Use:   "release -w WORKLOAD (--update-image IMAGE | --update-all-images) [--dry-run]",
		Short: "Set a workload's images: to a given image, or to what each policy picks (in a checkout, or through the daemon)",
		Args:  noArgs,
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
			ds, err := rel.Decide(cmd.Context(), res.Targets, co.choose)
			if err != nil {
				return err
			}
			return showOrApply(cmd, co.finder, where.dir, ds, dryRun)
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
