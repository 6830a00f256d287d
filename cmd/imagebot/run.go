package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"imagebot.dev/imagebot/internal/daemon"
)

func newRun() *cobra.Command {
	var (
		configs                           []string
		dataDir, listen                   string
		tokenFile, hmacFile, apiTokenFile string
		logFormat, logLevel               string
		kubeconfig, ns                    string
		noSync, leaderElect               bool
	)
	cmd := &cobra.Command{
		Use:   "run --config PATH [--config PATH...]",
		Short: "Run the daemon: automate every repository in the config files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			opts := daemon.Options{ConfigPaths: configs, DataDir: dataDir, Listen: listen, Logger: log}
			if tokenFile != "" {
				if opts.WebhookToken, err = readSecret(tokenFile); err != nil {
					return err
				}
			}
			if apiTokenFile != "" {
				if opts.APIToken, err = readSecret(apiTokenFile); err != nil {
					return err
				}
			}
			if hmacFile != "" {
				s, err := readSecret(hmacFile)
				if err != nil {
					return err
				}
				opts.WebhookHMACSecret = []byte(s)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			klog.SetSlogLogger(log) // client-go's own logs, in the same format
			if !noSync || leaderElect {
				cfg, err := clusterConfig(kubeconfig)
				if err != nil {
					return err
				}
				if !noSync {
					if opts.Syncers, err = daemon.ClusterSyncers(ctx, cfg, ns, log); err != nil {
						return err
					}
				}
				if leaderElect {
					opts.LeaderElection = &daemon.LeaderElection{Config: cfg, Namespace: ns}
				}
				client, err := kubernetes.NewForConfig(cfg)
				if err != nil {
					return err
				}
				opts.PullSecrets = daemon.PullSecretKeychains(client)
			}
			d, err := daemon.New(opts)
			if err != nil {
				return err
			}
			return d.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&configs, "config", nil, "repository config file or directory (repeatable)")
	f.StringVar(&dataDir, "data-dir", "/var/lib/imagebot", "mirrors, working trees and the scan cache")
	f.StringVar(&listen, "listen", ":8080", "address of the health, metrics, webhook and status endpoints")
	f.StringVar(&tokenFile, "webhook-token-file", "", "file holding the shared token registry webhooks present")
	f.StringVar(&hmacFile, "webhook-hmac-file", "", "file holding the HMAC-SHA256 secret of signed webhooks")
	f.StringVar(&apiTokenFile, "api-token-file", "", "file holding the token of the edit API (release, annotate); without it that API is off")
	f.StringVar(&logFormat, "log-format", "json", "json or text")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to sync (default: $KUBECONFIG, else in-cluster)")
	f.StringVar(&ns, "namespace", envOr("POD_NAMESPACE", "imagebot-system"), "namespace of the sync inventories")
	f.BoolVar(&noSync, "no-sync", false, "commit and push only: do not apply to a cluster")
	f.BoolVar(&leaderElect, "leader-elect", false, "run the repositories only while holding the Lease imagebot in --namespace (for several replicas)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func readSecret(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, o)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// clusterConfig is the --kubeconfig file, else $KUBECONFIG, else the in-cluster config.
func clusterConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster to sync to (%v): give --kubeconfig, or --no-sync", err)
	}
	return cfg, nil
}
