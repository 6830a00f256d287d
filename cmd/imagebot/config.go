package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"imagebot.dev/imagebot/internal/config"
)

func newConfig() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with repository config files"}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate PATH...",
		Short: "Check repository config files (a file or a directory each); exit 1 on any error",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repos, err := config.Load(args...)
			if err != nil {
				return err
			}
			for _, r := range repos {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: repository %q ok\n", r.File, r.Metadata.Name)
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of repository config files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := config.Schema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	})
	return cmd
}
