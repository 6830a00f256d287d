package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const seedManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: fluxdemo
  namespace: my-demo
  annotations:
    flux.weave.works/automated: 'true'
    flux.weave.works/tag.flask: glob:develop-v*
spec:
  template:
    spec:
      containers:
      - name: nginx
        image: nginx:1.16
      - name: flask
        image: registry.example.com/team/flaskapp:develop-v1.8.0
`

func run(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		t.Fatalf("imagebot %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestWorkloadCommands(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "flask.yaml")
	if err := os.WriteFile(file, []byte(seedManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func() string { b, _ := os.ReadFile(file); return string(b) }

	out := run(t, "list-workloads", "--path", dir)
	if !strings.Contains(out, "Deployment/my-demo/fluxdemo  flask      registry.example.com/team/flaskapp:develop-v1.8.0  glob:develop-v*  automated") {
		t.Errorf("list-workloads:\n%s", out)
	}
	if out := run(t, "list-workloads", "--path", dir, "-o", "yaml"); !strings.Contains(out, "Container: flask") || !strings.Contains(out, "Policy: glob:develop-v*") {
		t.Errorf("list-workloads -o yaml:\n%s", out)
	}
	run(t, "lock", "--path", dir, "-w", "my-demo/fluxdemo", "-m", "incident 42", "--user", "ana")
	if !strings.Contains(read(), "flux.weave.works/locked: \"true\"") || !strings.Contains(read(), "incident 42") {
		t.Errorf("after lock:\n%s", read())
	}
	if out := run(t, "list-workloads", "--path", dir); !strings.Contains(out, "locked (incident 42)") {
		t.Errorf("list-workloads after lock:\n%s", out)
	}
	// A release onto the locked workload is refused (exit 4) unless forced.
	locked := read()
	if out, code := runCode("release", "--path", dir, "-w", "my-demo/fluxdemo", "-i", "registry.example.com/team/flaskapp:develop-v1.9.0"); code != exitRefused || read() != locked {
		t.Errorf("release onto a locked workload: exit %d\n%s", code, out)
	}
	run(t, "unlock", "--path", dir, "-w", "my-demo/fluxdemo")
	run(t, "policy", "--path", dir, "-w", "Deployment/my-demo/fluxdemo", "--tag", "flask=semver:~1.8")
	run(t, "deautomate", "--path", dir, "-w", "my-demo/fluxdemo")
	want := strings.Replace(strings.Replace(seedManifest, "glob:develop-v*", "semver:~1.8", 1), "    flux.weave.works/automated: 'true'\n", "", 1)
	if got := read(); got != want {
		t.Errorf("after unlock, policy, deautomate:\n%s\nwant:\n%s", got, want)
	}

	key := filepath.Join(t.TempDir(), "identity")
	out = run(t, "identity", "--generate", "--key", key)
	if !strings.HasPrefix(out, "ssh-ed25519 ") || !strings.Contains(out, "\nSHA256:") {
		t.Errorf("identity: %q", out)
	}
	if again := run(t, "identity", "--key", key); again != out {
		t.Errorf("identity of the same key differs: %q vs %q", again, out)
	}
}
