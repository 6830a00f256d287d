// Command demo is `make demo`: it starts the test world (a Kubernetes cluster with a kwok
// node, a registry and an SSH git server, on loopback), creates the Flux v1 demo repository,
// runs an imagebot daemon on it, and narrates the user's day with timings: the first sync, a
// new tag landing as a commit and a rollout, a manual scale reverted, a human revert not
// fought. Then it leaves everything running to explore, and cleans up on Ctrl-C.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"imagebot.dev/imagebot/internal/demo"
	"imagebot.dev/imagebot/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "imagebot-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	listen := l.Addr().String()
	l.Close()

	fmt.Println("==> starting the test world (cluster + kwok node, registry, git server) in", dir)
	start := time.Now()
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	env, err := testenv.Start(startCtx, filepath.Join(dir, "world"), demo.EnvOptions(listen))
	cancel()
	if err != nil {
		return err
	}
	defer env.Stop()
	fmt.Printf("    started in %v\n", time.Since(start).Round(10*time.Millisecond))

	logFile, err := os.Create(filepath.Join(dir, "imagebot.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	daemonCtx, stopDaemon := context.WithCancel(ctx)
	defer stopDaemon()
	w, done, err := demo.Start(daemonCtx, env, listen, dir, os.Stdout, logFile)
	if err != nil {
		return err
	}
	fmt.Printf("==> imagebot runs on %s (logs: %s)\n", w.Daemon, logFile.Name())
	if err := w.Walkthrough(ctx); err != nil {
		return err
	}
	bin, _ := testenv.BinDir()
	fmt.Printf(`
All steps passed. Everything keeps running; explore it from another shell:

  export KUBECONFIG=%s PATH=%s:"$PATH"
  kubectl -n my-demo get deploy,pods
  curl -s %s/api/v1/status
  GIT_SSH_COMMAND='ssh -i %s -o UserKnownHostsFile=%s' git clone %s

Ctrl-C stops everything.
`, env.Cluster.Kubeconfig, bin, w.Daemon, env.Git.DeployKey, env.Git.KnownHosts, env.Git.URL("demo"))
	<-ctx.Done()
	fmt.Println("\nstopping")
	stopDaemon()
	return <-done
}
