package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/daemon"
)

// Commands that talk to a running daemon (--daemon, default $IMAGEBOT_URL or
// http://127.0.0.1:8080; e.g. through `kubectl port-forward svc/imagebot 8080:80`).

func daemonFlag(cmd *cobra.Command, url *string) {
	cmd.Flags().StringVar(url, "daemon", envOr("IMAGEBOT_URL", "http://127.0.0.1:8080"), "the daemon's base URL")
}

func newListImages() *cobra.Command {
	var url, output string
	cmd := &cobra.Command{
		Use:   "list-images [--daemon URL]",
		Short: "Per container: the image git holds, the tag its policy picks, and why they differ",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st daemon.Status
			if err := call(cmd.Context(), http.MethodGet, url+"/api/v1/status", "", nil, &st); err != nil {
				return err
			}
			if output != "table" {
				return printStructured(cmd, output, st)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REPOSITORY\tWORKLOAD\tCONTAINER\tIMAGE\tBEST\tREASON")
			for _, r := range st.Repositories {
				if r.Error != "" {
					fmt.Fprintf(tw, "%s\t\t\t\t\terror: %s\n", r.Repository, r.Error)
				}
				for _, t := range r.Targets {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, t.Workload, t.Container, t.Image, t.Best, t.Reason)
					for _, n := range t.Tags {
						fmt.Fprintf(tw, "\t\t\t  %s\t\t%s\n", n.Tag, n.Note)
					}
					if t.Filtered > 0 {
						fmt.Fprintf(tw, "\t\t\t  (%d more tags rejected by the filter)\t\t\n", t.Filtered)
					}
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout())
			tw = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE REPOSITORY\tTAGS\tLAST SCAN\tNEXT SCAN\tSTATE")
			for _, i := range st.Images {
				state := "ok"
				if i.LastError != "" {
					state = "error: " + i.LastError
				}
				switch {
				case i.Scanning && i.Progress != "":
					state = "scanning: " + i.Progress
				case i.Progress != "":
					state += " (" + i.Progress + " so far)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", i.Repository, i.Tags, ago(i.LastScan), until(i.NextScan), state)
			}
			return tw.Flush()
		},
	}
	daemonFlag(cmd, &url)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

func newSync() *cobra.Command {
	var url, repository, tokenFile string
	var massPrune bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "sync [--repository NAME] --token-file FILE [--daemon URL] [--allow-mass-prune] [--wait DURATION]",
		Short: "Make the daemon reconcile now (fetch, update, push, apply) and wait for it, then for the rollouts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := readSecret(tokenFile)
			if err != nil {
				return err
			}
			q := neturl.Values{}
			if repository != "" {
				q.Set("repository", repository)
			}
			if massPrune {
				q.Set("allowMassPrune", "true")
			}
			target := url + "/api/v1/sync"
			if len(q) > 0 {
				target += "?" + q.Encode()
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "reconciling…")
			var sts []bot.Status
			if err := call(cmd.Context(), http.MethodPost, target, token, nil, &sts); err != nil {
				return err
			}
			failed := false
			for _, st := range sts {
				line := fmt.Sprintf("%s: at %.12s in %v", st.Repository, st.Revision, st.Duration.Round(time.Millisecond))
				if st.Pushed != "" {
					line += fmt.Sprintf(", pushed %.12s", st.Pushed)
				}
				if st.Synced != "" {
					line += ", applied"
				}
				if st.Error != "" {
					line += ", error: " + st.Error
					failed = true
				}
				fmt.Fprintln(cmd.OutOrStdout(), line)
			}
			if failed {
				return fmt.Errorf("a repository failed to reconcile")
			}
			if wait > 0 {
				return waitRollouts(cmd, url, sts, wait)
			}
			return nil
		},
	}
	daemonFlag(cmd, &url)
	cmd.Flags().StringVar(&repository, "repository", "", "only this repository (default: all)")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding the daemon's webhook token or API token")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "then wait this long at most for the applied commits' rollouts to be Ready (0: do not wait)")
	cmd.Flags().BoolVar(&massPrune, "allow-mass-prune", false, "let this sync delete more than maxPruneFraction of the inventory (needs the API token and --repository)")
	_ = cmd.MarkFlagRequired("token-file")
	return cmd
}

// call sends a request to the daemon, with body as JSON when it is not nil, and decodes its
// JSON answer into out. A status other than 2xx is an *httpError.
func call(ctx context.Context, method, url, token string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach the daemon: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(b))
		var e daemon.ErrorResponse
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &httpError{Code: resp.StatusCode, Msg: fmt.Sprintf("%s %s: %s: %s", method, url, resp.Status, msg)}
	}
	return json.Unmarshal(b, out)
}

// httpError is a daemon's answer other than 2xx; its code decides the exit code.
type httpError struct {
	Code int
	Msg  string
}

func (e *httpError) Error() string { return e.Msg }

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func until(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return "in " + time.Until(t).Round(time.Second).String()
}

// waitRollouts polls the daemon's status until the sync of each commit the reconciles
// applied is Ready (rolled out) or Stalled, or limit passes. A Stalled sync or the time
// running out is an error.
func waitRollouts(cmd *cobra.Command, url string, sts []bot.Status, limit time.Duration) error {
	pending := map[string]string{} // repository → the revision applied
	for _, st := range sts {
		if st.Synced != "" {
			pending[st.Repository] = st.Synced
		}
	}
	if len(pending) == 0 {
		return nil
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "waiting for the rollouts…")
	deadline := time.Now().Add(limit)
	var stalled []string
	for len(pending) > 0 {
		var status daemon.Status
		if err := call(cmd.Context(), http.MethodGet, url+"/api/v1/status", "", nil, &status); err != nil {
			return err
		}
		for _, s := range status.Syncs {
			rev, ok := pending[s.Repository]
			if !ok || s.Revision != rev {
				continue
			}
			switch s.Status {
			case "Ready":
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %.12s rolled out\n", s.Repository, rev)
				delete(pending, s.Repository)
			case "Stalled":
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %.12s stalled: %s\n", s.Repository, rev, s.Message)
				stalled = append(stalled, s.Repository)
				delete(pending, s.Repository)
			}
		}
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for repo, rev := range pending {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %.12s still rolling out after %v\n", repo, rev, limit)
			}
			return fmt.Errorf("rollouts not finished within %v", limit)
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if len(stalled) > 0 {
		return fmt.Errorf("the sync of %s stalled", strings.Join(stalled, ", "))
	}
	return nil
}
