// Command imagebot is the CLI and daemon entry point of imagebot: flags and wiring only.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"imagebot.dev/imagebot/internal/version"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "imagebot:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "imagebot",
		Short:         "GitOps image automation for Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersion(), newConfig(), newRun(), newListWorkloads(), newIdentity(), newPlan(), newRelease(), newListImages(), newSync())
	root.AddCommand(annotationCommands()...)
	return root
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version.Get())
			return err
		},
	}
}
