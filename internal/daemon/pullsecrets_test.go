package daemon_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/testenv"
)

// TestPullSecrets: a registry that wants credentials is scanned with the workload's
// imagePullSecrets, read from the cluster; without them the scan fails with 401.
func TestPullSecrets(t *testing.T) {
	env := testenv.New(t, testenv.Options{Cluster: true, Registry: true, GitServer: true,
		RegistryOptions: testenv.RegistryOptions{Auth: true}})
	ctx := context.Background()
	t0 := time.Now().Add(-24 * time.Hour)
	for i, tag := range []string{"develop-v1.8.0", "develop-v1.8.1"} {
		if _, err := env.Registry.Push(ctx, "team/flaskapp", tag, testenv.ImageSpec{Created: t0.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	manifest := strings.Replace(strings.ReplaceAll(seed, "REG", env.Registry.Host), "      containers:\n",
		"      imagePullSecrets:\n      - name: regcred\n      containers:\n", 1)
	url, err := env.Git.CreateRepo("config", "main", map[string]string{"apps/flask.yaml": manifest})
	if err != nil {
		t.Fatal(err)
	}
	// The secret, as `kubectl create secret docker-registry regcred` makes it.
	auth := base64.StdEncoding.EncodeToString([]byte(env.Registry.Username + ":" + env.Registry.Password))
	dockercfg, _ := json.Marshal(map[string]any{"auths": map[string]any{env.Registry.Host: map[string]string{"auth": auth}}})
	client := env.Cluster.Client
	client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "my-demo"}}, metav1.CreateOptions{})
	_, err = client.CoreV1().Secrets("my-demo").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred"},
		Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: dockercfg}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgFile := writeConfig(t, dir, url, env.Git, "1h", "1h", "")

	run := func(name string, opts daemon.Options) *world {
		opts.ConfigPaths, opts.DataDir, opts.Listen = []string{cfgFile}, filepath.Join(dir, name), "127.0.0.1:0"
		return &world{env: env, daemon: runDaemon(t, opts), repoPath: env.Git.RepoPath("config")}
	}
	// Without the cluster's pull secrets: 401, nothing committed.
	anon := run("anon", daemon.Options{})
	st := anon.waitStatus(t, 30*time.Second, func(st daemon.Status) bool { return len(st.Images) == 1 && st.Images[0].LastError != "" })
	if !strings.Contains(st.Images[0].LastError, "401") && !strings.Contains(strings.ToLower(st.Images[0].LastError), "unauthorized") {
		t.Errorf("scan without credentials: %s", st.Images[0].LastError)
	}
	// The status shows the next attempt: after a failure, not sooner than the 1h scan
	// interval (a failing image is never scanned more often than a healthy one).
	if img := st.Images[0]; img.NextScan.Sub(img.LastScan) < 54*time.Minute {
		t.Errorf("failing image: nextScan %s is %s after lastScan %s, want its 1h interval or more", img.NextScan, img.NextScan.Sub(img.LastScan), img.LastScan)
	}
	// With them: scanned, and the update pushed.
	run("cluster", daemon.Options{PullSecrets: daemon.PullSecretKeychains(client)})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if got, _ := testenv.ReadFile(env.Git.RepoPath("config"), "main", "apps/flask.yaml"); strings.Contains(got, "flaskapp:develop-v1.8.1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not updated with the pull secret's credentials")
		}
	}
}
