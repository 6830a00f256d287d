// Command imagebot is the CLI and daemon entry point of imagebot: flags and wiring only.
package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/update"
	"imagebot.dev/imagebot/internal/version"
)

// Exit codes, for scripts (README, CLI).
const (
	exitError    = 1 // anything else: a failed push, an unreachable daemon, a bad token
	exitUsage    = 2 // bad flags or arguments (or the daemon said 400)
	exitNotFound = 3 // no such repository, workload or container (404)
	exitRefused  = 4 // the workload is locked, or found twice (409)
	// exitScanFailed: plan or release --update-all-images on a checkout could not scan an
	// image's registry (401, 404, 429, a timeout, a bad response). Each failure is named on
	// stderr; what the other scans decided is still shown (plan, --dry-run) or made.
	exitScanFailed = 5
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "imagebot:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode is the exit code of a command's error.
func exitCode(err error) int {
	var he *httpError
	var ue usageError
	var sf scansFailedError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &sf):
		return exitScanFailed
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusBadRequest:
			return exitUsage
		case http.StatusNotFound:
			return exitNotFound
		case http.StatusConflict:
			return exitRefused
		}
	case errors.Is(err, errNoRepository), errors.Is(err, update.ErrWorkloadNotFound), errors.Is(err, bot.ErrNoContainer), errors.Is(err, update.ErrUnknownContainer):
		return exitNotFound
	case errors.Is(err, bot.ErrLocked), errors.Is(err, update.ErrAmbiguous):
		return exitRefused
	}
	return exitError
}

// usageError is an error in the command line (exit code 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "imagebot",
		Short:         "GitOps image automation for Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
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
