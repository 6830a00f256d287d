// Package demo is the Flux v1 walkthrough on imagebot, run against the test world: the seed
// repository (Namespace my-demo, the fluxdemo Deployment with an nginx and a flask container,
// the nginx ConfigMap), an imagebot daemon syncing it, and the user's day step by step. `make
// demo` narrates it to a person; the end-to-end test runs it unattended and fails on any step.
package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/testenv"
)

// Seed is the demo repository's manifest; REG is replaced by the registry's host.
const Seed = `---
apiVersion: v1
kind: Namespace
metadata:
  name: my-demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: nginx-config
  namespace: my-demo
data:
  default.conf: |
    server {
      listen 80;
      location / { proxy_pass http://127.0.0.1:5000; }
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fluxdemo
  namespace: my-demo
  annotations:
    flux.weave.works/automated: 'true'
    flux.weave.works/tag.flask: glob:develop-v*
spec:
  replicas: 1
  selector:
    matchLabels:
      app: fluxdemo
  template:
    metadata:
      labels:
        app: fluxdemo
    spec:
      containers:
      - name: nginx
        image: nginx:1.16
        ports:
        - containerPort: 80
      - name: flask
        image: REG/team/flaskapp:develop-v1.8.0
        ports:
        - containerPort: 5000
`

// World is the demo's running parts.
type World struct {
	Env      *testenv.Env
	Daemon   string // the daemon's base URL
	RepoPath string // the bare repository on the git server
	Out      io.Writer
	kubectl  string
	t0       time.Time
}

// Token authenticates the registry's webhooks to the demo's daemon.
const Token = "demo-webhook-token"

// EnvOptions is the test world the demo needs, with the registry's webhooks sent to a
// daemon that will listen on listen ("127.0.0.1:PORT").
func EnvOptions(listen string) testenv.Options {
	return testenv.Options{Cluster: true, Registry: true, GitServer: true, RegistryOptions: testenv.RegistryOptions{
		NotifyURL:     "http://" + listen + "/hooks/registry/distribution",
		NotifyHeaders: map[string]string{"Authorization": "Bearer " + Token}}}
}

// Start runs an imagebot daemon on listen over env (started with EnvOptions(listen)) with
// the seed repository. The daemon stops when ctx ends; done reports its exit.
//
// The daemon's logs go to logs (text format).
func Start(ctx context.Context, env *testenv.Env, listen, dir string, out, logs io.Writer) (w *World, done <-chan error, err error) {
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	bin, err := testenv.BinDir()
	if err != nil {
		return nil, nil, err
	}
	w = &World{Env: env, RepoPath: env.Git.RepoPath("demo"), Out: out, kubectl: filepath.Join(bin, "kubectl"),
		t0: time.Now().Add(-24 * time.Hour).Truncate(time.Second)}
	if _, err := env.Registry.Push(ctx, "team/flaskapp", "develop-v1.8.0", testenv.ImageSpec{Created: w.t0}); err != nil {
		return nil, nil, err
	}
	url, err := env.Git.CreateRepo("demo", "main", map[string]string{"apps/flask.yaml": strings.ReplaceAll(Seed, "REG", env.Registry.Host)})
	if err != nil {
		return nil, nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "imagebot-system"}}
	if _, err := env.Cluster.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, nil, err
	}
	cfg := fmt.Sprintf(`apiVersion: imagebot.dev/v1alpha1
kind: Repository
metadata:
  name: demo
spec:
  git:
    url: %s
    paths: [apps]
    interval: 10s
    auth:
      sshKeyFile: %s
      knownHostsFile: %s
  scan:
    interval: 1h          # the registry's webhook announces new tags
  images:
    include: ["%s/*"]     # only the local registry (nginx stays as it is)
  sync:
    prune: true
    healthTimeout: 30s
`, url, env.Git.DeployKey, env.Git.KnownHosts, env.Registry.Host)
	cfgFile := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return nil, nil, err
	}
	syncers, err := daemon.ClusterSyncers(ctx, env.Cluster.Config, "imagebot-system", log)
	if err != nil {
		return nil, nil, err
	}
	d, err := daemon.New(daemon.Options{ConfigPaths: []string{cfgFile}, DataDir: filepath.Join(dir, "data"),
		Listen: listen, WebhookToken: Token, Syncers: syncers, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	w.Daemon = "http://" + listen
	return w, errc, nil
}
