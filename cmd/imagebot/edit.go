package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/update"
)

// The editing commands (release, automate, deautomate, lock, unlock, policy) work on a
// local checkout (--path), leaving the commit to the user, or through the daemon
// (--daemon URL, or $IMAGEBOT_URL when --path is not given), which commits and pushes the
// edit and applies it.

// editTarget is where an editing command works, from its flags.
type editTarget struct {
	dir, url, tokenFile, repository, user, config string
}

func (e *editTarget) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&e.dir, "path", ".", "edit this local checkout (the commit is yours)")
	f.StringVar(&e.url, "daemon", "", "edit through the daemon at this URL, which commits and pushes (default $IMAGEBOT_URL unless --path is given)")
	f.StringVar(&e.tokenFile, "token-file", os.Getenv("IMAGEBOT_TOKEN_FILE"), "with the daemon: file holding its API token, from its --api-token-file (default $IMAGEBOT_TOKEN_FILE)")
	f.StringVar(&e.repository, "repository", "", "the repository to edit, of the daemon or of --config (needed when there are several)")
	configFlag(cmd, &e.config)
	f.StringVar(&e.user, "user", os.Getenv("USER"), "who asks: named in the daemon's commit message (and lock's locked_user)")
}

// remote says whether the command goes to the daemon.
func (e *editTarget) remote(cmd *cobra.Command) (bool, error) {
	f := cmd.Flags()
	switch {
	case f.Changed("daemon") && f.Changed("path"):
		return false, usagef("give --daemon or --path, not both")
	case f.Changed("daemon") && f.Changed("config"):
		return false, usagef("--config is for a local checkout (--path): the daemon uses its own config")
	case f.Changed("daemon"):
		if e.url == "" {
			return false, usagef("--daemon: give the daemon's URL")
		}
		return true, nil
	case !f.Changed("path") && !f.Changed("config") && os.Getenv("IMAGEBOT_URL") != "":
		e.url = os.Getenv("IMAGEBOT_URL")
		return true, nil
	case f.Changed("token-file"):
		return false, usagef("--token-file is for the daemon: give --daemon URL (or set $IMAGEBOT_URL)")
	case f.Changed("repository") && !f.Changed("config"):
		return false, usagef("--repository is for the daemon or --config: give --daemon URL (or set $IMAGEBOT_URL), or --config FILE")
	}
	return false, nil
}

// checkout is how the local checkout is read and automated: as the daemon does with
// --config, else with the defaults.
func (e *editTarget) checkout() (*checkout, error) { return loadCheckout(e.config, e.repository) }

// post sends an edit to the daemon and prints what it did: the changes and the commit, the
// diff of a dry run, or that there was nothing to change.
func (e *editTarget) post(cmd *cobra.Command, path string, body any) error {
	if e.tokenFile == "" {
		return usagef("give --token-file (or set $IMAGEBOT_TOKEN_FILE): the daemon's edits need its webhook token")
	}
	token, err := readSecret(e.tokenFile)
	if err != nil {
		return err
	}
	var out daemon.EditResponse
	if err := call(cmd.Context(), http.MethodPost, strings.TrimRight(e.url, "/")+path, token, body, &out); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	switch {
	case out.DryRun && out.Diff != "":
		_, err = io.WriteString(w, out.Diff)
		return err
	case len(out.Changes) == 0:
		fmt.Fprintln(w, "nothing to change")
		return nil
	}
	for _, c := range out.Changes {
		fmt.Fprintln(w, c)
	}
	if out.Commit != "" {
		fmt.Fprintf(w, "%s: pushed %s\n", out.Repository, out.Commit)
	}
	return nil
}

// parseWorkload reads --workload (see bot.ParseWorkload).
func parseWorkload(s string) (update.Workload, error) {
	w, err := bot.ParseWorkload(s)
	if err != nil {
		return w, usagef("--%w", err)
	}
	return w, nil
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return usageError{err}
	}
	return nil
}
