// Command testenv starts imagebot's test world (a Kubernetes control plane with a kwok node, a
// registry and an SSH git server, all on loopback), prints how to reach each part, and stops
// everything on Ctrl-C. `make demo` runs it.
//
//	go run ./hack/testenv up [-dir DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"imagebot.dev/imagebot/internal/testenv"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "up" {
		fmt.Fprintln(os.Stderr, "usage: testenv up [-dir DIR]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dir := fs.String("dir", "", "state directory (default: a new temp dir, removed on exit)")
	_ = fs.Parse(os.Args[2:])
	if err := up(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
}

func up(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if dir == "" {
		d, err := os.MkdirTemp("", "imagebot-testenv-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	bin, err := testenv.BinDir()
	if err != nil {
		return err
	}
	fmt.Println("starting the test world (cluster, registry, git server) in", dir)
	start := time.Now()
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	env, err := testenv.Start(startCtx, dir, testenv.All)
	cancel()
	if err != nil {
		return err
	}
	defer env.Stop()
	url, err := env.Git.CreateRepo("demo", "main", map[string]string{"README.md": "imagebot demo repository\n"})
	if err != nil {
		return err
	}
	fmt.Printf("started in %v\n\n", time.Since(start).Round(time.Millisecond))

	envFile := filepath.Join(dir, "env.sh")
	script := fmt.Sprintf(`export KUBECONFIG=%q
export PATH=%q:"$PATH"
export IMAGEBOT_REGISTRY=%q
export IMAGEBOT_GIT_URL=%q
export GIT_SSH_COMMAND=%q
`, env.Cluster.Kubeconfig, bin, env.Registry.Host, url,
		fmt.Sprintf("ssh -i %s -o UserKnownHostsFile=%s -o IdentitiesOnly=yes", env.Git.DeployKey, env.Git.KnownHosts))
	if err := os.WriteFile(envFile, []byte(script), 0o644); err != nil {
		return err
	}
	fmt.Printf(`Kubernetes   kubeconfig %s (node %s managed by kwok)
             kubectl    %s
Registry     http://%s (plain HTTP, no auth; push with crane or go-containerregistry)
Git server   %s
             deploy key %s
             known_hosts %s

In another shell:  source %s && kubectl get nodes && git clone "$IMAGEBOT_GIT_URL"
Ctrl-C stops everything.
`, env.Cluster.Kubeconfig, testenv.NodeName, filepath.Join(bin, "kubectl"), env.Registry.Host, url,
		env.Git.DeployKey, env.Git.KnownHosts, envFile)
	<-ctx.Done()
	fmt.Println("\nstopping")
	return nil
}
