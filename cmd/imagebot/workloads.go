package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/update"
)

// list-workloads reads a local checkout of the repository (--path, default the current
// directory). The editing commands are in edit.go.

func newListWorkloads() *cobra.Command {
	var dir, output, configFile, repository string
	cmd := &cobra.Command{
		Use:   "list-workloads [--path DIR] [--config FILE [--repository NAME]]",
		Short: "List the workloads and containers of a checkout, with their automation settings",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			co, err := loadCheckout(configFile, repository)
			if err != nil {
				return err
			}
			res, err := co.finder.Find(cmd.Context(), dir)
			if err != nil {
				return err
			}
			for _, p := range res.Problems {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", p.Error())
			}
			if output != "table" {
				type row struct {
					File, Workload, Container, Image, Policy string
					Automated, Locked                        bool
					LockedMsg                                string `json:",omitempty"`
					// Excluded says why the config's spec.images leaves the image out.
					Excluded string `json:",omitempty"`
				}
				rows := []row{}
				for _, t := range res.Targets {
					rows = append(rows, row{t.File, t.Workload.String(), t.Container, t.Image, t.Policy, t.Automated, t.Locked, t.LockedMsg, co.excluded(t)})
				}
				return printStructured(cmd, output, rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKLOAD\tCONTAINER\tIMAGE\tPOLICY\tSTATUS")
			for _, t := range res.Targets {
				status := "manual"
				switch {
				case t.Ignored:
					status = "ignored"
				case t.Locked:
					status = "locked"
					if t.LockedMsg != "" {
						status += " (" + t.LockedMsg + ")"
					}
				case t.PolicyErr != nil:
					status = "invalid policy"
				case t.Automated && co.excluded(t) != "":
					status = "excluded by spec.images"
				case t.Automated:
					status = "automated"
				}
				w := t.Workload.String()
				if t.Workload.Name == "" {
					w = t.File
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", w, t.Container, t.Image, t.Policy, status)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "path", ".", "the checkout to read")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	configFlag(cmd, &configFile)
	repositoryFlag(cmd, &repository)
	return cmd
}

// printStructured writes v as JSON or YAML (-o json|yaml).
func printStructured(cmd *cobra.Command, output string, v any) error {
	switch output {
	case "json":
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = cmd.OutOrStdout().Write(b)
		return err
	}
	return fmt.Errorf("-o %q: want table, json or yaml", output)
}

// newAnnotate makes automate, deautomate, lock, unlock and policy.
func newAnnotate(use, short string, set func(e *update.AnnotationEdit, cmd *cobra.Command) error) *cobra.Command {
	var workload string
	var where editTarget
	cmd := &cobra.Command{
		Use:   use + " --workload KIND/NAMESPACE/NAME",
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if workload == "" {
				return usagef("give --workload")
			}
			w, err := parseWorkload(workload)
			if err != nil {
				return err
			}
			edit := update.AnnotationEdit{Workload: w}
			if err := set(&edit, cmd); err != nil {
				return err
			}
			remote, err := where.remote(cmd)
			if err != nil {
				return err
			}
			if remote {
				return where.post(cmd, "/api/v1/annotate", daemon.AnnotateRequest{Repository: where.repository, Workload: workload,
					Automated: edit.Automated, Locked: edit.Locked, Message: edit.LockedMsg, User: where.user, Tags: edit.Tags})
			}
			co, err := where.checkout()
			if err != nil {
				return err
			}
			cs, err := co.finder.Annotate(cmd.Context(), where.dir, edit)
			if err != nil {
				return err
			}
			if cs.Empty() {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing to change")
				return nil
			}
			for _, c := range cs.Changes {
				fmt.Fprintf(cmd.OutOrStdout(), "%s:%d %s %s: %q -> %q\n", c.File, c.Line, c.Workload, c.Annotation, c.Old, c.New)
			}
			return nil
		},
	}
	where.flags(cmd)
	cmd.Flags().StringVarP(&workload, "workload", "w", "", "the workload: Kind/namespace/name, namespace/name or name")
	return cmd
}

func annotationCommands() []*cobra.Command {
	yes, no := true, false
	lock := newAnnotate("lock", "Lock a workload's images (automation leaves them alone)", func(e *update.AnnotationEdit, cmd *cobra.Command) error {
		e.Locked = &yes
		e.LockedMsg, _ = cmd.Flags().GetString("message")
		e.LockedUser, _ = cmd.Flags().GetString("user")
		return nil
	})
	lock.Flags().StringP("message", "m", "", "why (locked_msg)")
	policy := newAnnotate("policy", "Set or remove container tag policies", func(e *update.AnnotationEdit, cmd *cobra.Command) error {
		tags, _ := cmd.Flags().GetStringArray("tag")
		if len(tags) == 0 {
			return usagef("give --tag container=policy (empty policy removes it)")
		}
		e.Tags = map[string]string{}
		for _, t := range tags {
			c, p, ok := strings.Cut(t, "=")
			if !ok || c == "" {
				return usagef("--tag %q: want container=policy", t)
			}
			e.Tags[c] = p
		}
		return nil
	})
	policy.Flags().StringArray("tag", nil, "container=policy, e.g. flask=semver:~1.2 (repeatable)")
	return []*cobra.Command{
		newAnnotate("automate", "Turn on automation for a workload", func(e *update.AnnotationEdit, _ *cobra.Command) error { e.Automated = &yes; return nil }),
		newAnnotate("deautomate", "Turn off automation for a workload", func(e *update.AnnotationEdit, _ *cobra.Command) error { e.Automated = &no; return nil }),
		lock,
		newAnnotate("unlock", "Unlock a workload's images", func(e *update.AnnotationEdit, _ *cobra.Command) error { e.Locked = &no; return nil }),
		policy,
	}
}

func newIdentity() *cobra.Command {
	var key, passphrase, kind string
	var generate bool
	cmd := &cobra.Command{
		Use:   "identity --key FILE",
		Short: "Print the deploy key's public half and fingerprint (--generate makes a new key first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if generate {
				if _, err := git.GenerateKey(key, git.KeyType(kind), "imagebot"); err != nil {
					return err
				}
			}
			pub, fp, err := git.PublicKey(key, passphrase)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\n", pub, fp)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "/etc/imagebot/secrets/identity", "the private key file")
	cmd.Flags().StringVar(&passphrase, "passphrase-file", "", "the key's passphrase, if encrypted")
	cmd.Flags().BoolVar(&generate, "generate", false, "write a new key to --key first (refuses to overwrite)")
	cmd.Flags().StringVar(&kind, "type", "ed25519", "with --generate: ed25519, ecdsa or rsa")
	return cmd
}
