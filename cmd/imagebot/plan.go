package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/update"
)

func newPlan() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "plan [--path DIR]",
		Short: "Show, as a diff, what the next cycle would commit in a checkout (scans the registries)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var f update.Finder
			res, err := f.Find(cmd.Context(), dir)
			if err != nil {
				return err
			}
			var ds []update.Decision
			sc := scan.New(scan.Options{Keychain: authn.DefaultKeychain})
			for _, t := range res.Targets {
				if !bot.Automatable(t) {
					continue
				}
				c, err := choose(cmd.Context(), sc, t)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s %s: %v\n", t.Workload, t.Container, err)
					continue
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s %s: %s\n", t.Workload, t.Container, c.Result.Reason)
				if c.Result.Changed {
					ds = append(ds, update.Decision{Target: t, Image: c.Next})
				}
			}
			return showOrApply(cmd, &f, dir, ds, true)
		},
	}
	cmd.Flags().StringVar(&dir, "path", ".", "the checkout")
	return cmd
}

// choose scans t's repository for what its policy needs and applies the policy.
func choose(ctx context.Context, sc *scan.Scanner, t update.Target) (*bot.Choice, error) {
	ref, err := name.ParseReference(t.Image)
	if err != nil {
		return nil, err
	}
	need, err := bot.Need(t)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := sc.Scan(ctx, ref.Context(), need)
	if err != nil {
		return nil, err
	}
	return bot.Choose(t, res, time.Now())
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
			var f update.Finder
			res, err := f.Find(cmd.Context(), where.dir)
			if err != nil {
				return err
			}
			sc := scan.New(scan.Options{Keychain: authn.DefaultKeychain})
			rel := bot.Release{Workload: w, Container: container, Image: want, Force: force}
			ds, err := rel.Decide(cmd.Context(), res.Targets, func(ctx context.Context, t update.Target) (*bot.Choice, error) {
				return choose(ctx, sc, t)
			})
			if err != nil {
				return err
			}
			return showOrApply(cmd, &f, where.dir, ds, dryRun)
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
