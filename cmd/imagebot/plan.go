package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"imagebot.dev/imagebot/internal/bot"
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
	byFile := map[string][]update.Decision{}
	for _, d := range ds {
		byFile[d.Target.File] = append(byFile[d.Target.File], d)
	}
	files := make([]string, 0, len(byFile))
	for file := range byFile {
		files = append(files, file)
	}
	sort.Strings(files)
	for _, file := range files {
		before, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
		if err != nil {
			return err
		}
		after, _, err := f.EditBytes(file, before, byFile[file])
		if err != nil {
			return err
		}
		_, _ = io.WriteString(cmd.OutOrStdout(), update.LineDiff(file, before, after))
	}
	return nil
}

func newRelease() *cobra.Command {
	var dir, workload, image, container string
	var all, dryRun bool
	cmd := &cobra.Command{
		Use:   "release -w WORKLOAD (--update-image IMAGE | --update-all-images) [--dry-run]",
		Short: "Set a workload's images in a checkout: to a given image, or to what each policy picks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w, err := parseWorkload(workload)
			if err != nil {
				return err
			}
			if (image == "") == !all {
				return fmt.Errorf("give exactly one of --update-image and --update-all-images")
			}
			var want name.Reference
			if image != "" {
				if want, err = name.ParseReference(image); err != nil {
					return fmt.Errorf("--update-image %q: %w", image, err)
				}
			}
			var f update.Finder
			res, err := f.Find(cmd.Context(), dir)
			if err != nil {
				return err
			}
			var ds []update.Decision
			matched := false
			sc := scan.New(scan.Options{Keychain: authn.DefaultKeychain})
			for _, t := range res.Targets {
				if t.Workload != w || (container != "" && t.Container != container) {
					continue
				}
				cur, err := name.ParseReference(t.Image)
				if err != nil {
					continue
				}
				if want != nil {
					if cur.Context().Name() != want.Context().Name() {
						continue
					}
					matched = true
					if cur.Name() != want.Name() {
						ds = append(ds, update.Decision{Target: t, Image: want})
					}
					continue
				}
				matched = true
				if t.Policy == "" || t.PolicyErr != nil {
					continue
				}
				c, err := choose(cmd.Context(), sc, t)
				if err != nil {
					return fmt.Errorf("%s %s: %w", t.Workload, t.Container, err)
				}
				if c.Result.Changed {
					ds = append(ds, update.Decision{Target: t, Image: c.Next})
				}
			}
			if !matched {
				return fmt.Errorf("no container of %s runs %s", w, map[bool]string{true: image, false: "an image"}[image != ""])
			}
			return showOrApply(cmd, &f, dir, ds, dryRun)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "path", ".", "the checkout to edit")
	f.StringVarP(&workload, "workload", "w", "", "the workload: Kind/namespace/name, namespace/name or name")
	f.StringVarP(&image, "update-image", "i", "", "the image to run, e.g. registry.example.com/team/app:v1.2.3")
	f.StringVar(&container, "container", "", "only this container")
	f.BoolVar(&all, "update-all-images", false, "set every container to what its policy picks now (scans)")
	f.BoolVar(&dryRun, "dry-run", false, "show the diff, change nothing")
	_ = cmd.MarkFlagRequired("workload")
	return cmd
}
