package testenv_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/memfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"imagebot.dev/imagebot/internal/testenv"
)

// notifications collects the registry's webhook envelopes.
type notifications struct {
	mu     sync.Mutex
	events []string // action repo:tag
}

func (n *notifications) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer hook-secret" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var env struct {
		Events []struct {
			Action string `json:"action"`
			Target struct {
				MediaType  string `json:"mediaType"`
				Repository string `json:"repository"`
				Tag        string `json:"tag"`
			} `json:"target"`
		} `json:"events"`
	}
	if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n.mu.Lock()
	for _, e := range env.Events {
		if e.Target.Tag != "" {
			n.events = append(n.events, e.Action+" "+e.Target.Repository+":"+e.Target.Tag)
		}
	}
	n.mu.Unlock()
}

func (n *notifications) has(s string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range n.events {
		if e == s {
			return true
		}
	}
	return false
}

// TestEnvironment starts two whole environments at once, exercises one, checks they are
// independent, stops both and checks that no process is left behind.
func TestEnvironment(t *testing.T) {
	hooks := &notifications{}
	hookSrv := httptest.NewServer(hooks)
	defer hookSrv.Close()
	opts := testenv.All
	opts.RegistryOptions = testenv.RegistryOptions{Auth: true, NotifyURL: hookSrv.URL,
		NotifyHeaders: map[string]string{"Authorization": "Bearer hook-secret"}}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var envs [2]*testenv.Env
	var errs [2]error
	var wg sync.WaitGroup
	start := time.Now()
	for i := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			envs[i], errs[i] = testenv.Start(ctx, t.TempDir(), opts)
		}()
	}
	wg.Wait()
	t.Logf("two environments started in %v", time.Since(start).Round(time.Millisecond))
	for i := range envs {
		if errs[i] != nil {
			for _, e := range envs {
				if e != nil {
					e.Stop()
				}
			}
			t.Fatalf("start environment %d: %v", i, errs[i])
		}
	}
	a, b := envs[0], envs[1]
	stopped := false
	defer func() {
		if !stopped {
			a.Stop()
			b.Stop()
		}
	}()

	if a.Cluster.Config.Host == b.Cluster.Config.Host || a.Registry.Host == b.Registry.Host || a.Git.Addr == b.Git.Addr {
		t.Fatalf("environments share an address: %s %s %s / %s %s %s", a.Cluster.Config.Host, a.Registry.Host, a.Git.Addr,
			b.Cluster.Config.Host, b.Registry.Host, b.Git.Addr)
	}
	for _, addr := range []string{a.Cluster.Config.Host, a.Registry.Host, a.Git.Addr} {
		if !strings.Contains(addr, "127.0.0.1:") {
			t.Errorf("%s is not on loopback", addr)
		}
	}

	t.Run("cluster rolls out a deployment", func(t *testing.T) { testDeployment(t, a) })
	t.Run("registry pushes, lists and notifies", func(t *testing.T) { testRegistry(t, a, hooks) })
	t.Run("git server over ssh", func(t *testing.T) { testGit(t, a, b) })
	t.Run("restricted credentials", func(t *testing.T) { testRestricted(t, a) })

	pids := append(a.Pids(), b.Pids()...)
	if len(pids) != 2*7 {
		t.Errorf("expected 14 processes (5 cluster, registry, sshd per environment), got %d", len(pids))
	}
	for _, pid := range pids {
		if !testenv.Alive(pid) {
			t.Errorf("process %d died while the environment was up", pid)
		}
	}
	a.Stop()
	b.Stop()
	stopped = true
	for _, pid := range pids {
		if testenv.Alive(pid) {
			t.Errorf("process %d is still alive after Stop", pid)
		}
	}
}

func testDeployment(t *testing.T, e *testenv.Env) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dep := nginxDeployment("hello", 2)
	if _, err := e.Cluster.Client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last string
	for ctx.Err() == nil {
		d, err := e.Cluster.Client.AppsV1().Deployments("default").Get(ctx, "hello", metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas == 2 && d.Status.UpdatedReplicas == 2 {
			break
		}
		if err == nil {
			last = fmt.Sprintf("ready %d/2", d.Status.ReadyReplicas)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatalf("deployment did not roll out: %s", last)
	}
	pods, err := e.Cluster.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == testenv.NodeName {
			running++
		}
	}
	if running != 2 {
		t.Fatalf("want 2 pods Running on %s, got %d of %d", testenv.NodeName, running, len(pods.Items))
	}
	// kubectl, the user's tool, sees the same through the admin kubeconfig.
	bin, err := testenv.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "kubectl"), "--kubeconfig", e.Cluster.Kubeconfig,
		"get", "pods", "-l", "app=hello", "--no-headers").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get pods: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), "Running"); got != 2 {
		t.Fatalf("kubectl get pods shows %d Running, want 2:\n%s", got, out)
	}
}

func testRegistry(t *testing.T, e *testenv.Env, hooks *notifications) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if _, err := e.Registry.Push(ctx, "team/app", "v1.0.0", testenv.ImageSpec{Created: created}); err != nil {
		t.Fatal(err)
	}
	multi := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	idxDigest, err := e.Registry.Push(ctx, "team/app", "v1.1.0", testenv.ImageSpec{Created: created.Add(time.Hour), Platforms: multi})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(e.Registry.Host+"/team/app", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(repo, remote.WithAuth(e.Registry.Auth()), remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tags, ",") != "v1.0.0,v1.1.0" {
		t.Fatalf("tags = %v, want [v1.0.0 v1.1.0]", tags)
	}
	// The config's created time is what was asked for.
	ref, _ := e.Registry.Ref("team/app", "v1.0.0")
	img, err := remote.Image(ref, remote.WithAuth(e.Registry.Auth()), remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cf.Created.Time.Equal(created) {
		t.Errorf("created = %v, want %v", cf.Created.Time, created)
	}
	// The multi-arch tag is an index with both platforms.
	ref, _ = e.Registry.Ref("team/app", "v1.1.0")
	desc, err := remote.Get(ref, remote.WithAuth(e.Registry.Auth()), remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if !desc.MediaType.IsIndex() || desc.Digest != idxDigest {
		t.Errorf("v1.1.0 is %s %s, want an index %s", desc.MediaType, desc.Digest, idxDigest)
	}
	// Without credentials the registry refuses.
	if _, err := remote.List(repo, remote.WithAuth(authn.Anonymous), remote.WithContext(ctx)); err == nil {
		t.Error("anonymous listing succeeded on a registry with auth")
	}
	// The registry's webhook reached the test's URL.
	deadline := time.Now().Add(10 * time.Second)
	for !hooks.has("push team/app:v1.1.0") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !hooks.has("push team/app:v1.0.0") || !hooks.has("push team/app:v1.1.0") {
		t.Errorf("push notifications not received: %v", hooks.events)
	}
}

func testGit(t *testing.T, e, other *testenv.Env) {
	url, err := e.Git.CreateRepo("config", "main", map[string]string{"apps/app.yaml": "kind: ConfigMap\n"})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := e.Git.Auth()
	if err != nil {
		t.Fatal(err)
	}
	fs := memfs.New()
	repo, err := gogit.Clone(memory.NewStorage(), fs, &gogit.CloneOptions{URL: url, Auth: auth})
	if err != nil {
		t.Fatalf("clone %s: %v", url, err)
	}
	w, _ := repo.Worktree()
	f, _ := fs.Create("apps/new.yaml")
	io.WriteString(f, "kind: Secret\n")
	f.Close()
	if _, err := w.Add("apps/new.yaml"); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "bot", Email: "bot@example.com", When: time.Now()}
	if _, err := w.Commit("add new.yaml", &gogit.CommitOptions{Author: sig}); err != nil {
		t.Fatal(err)
	}
	if err := repo.Push(&gogit.PushOptions{Auth: auth}); err != nil {
		t.Fatalf("push: %v", err)
	}
	// Re-clone and read what was pushed, through sshd and on the server's disk.
	again, err := gogit.Clone(memory.NewStorage(), memfs.New(), &gogit.CloneOptions{URL: url, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	head, _ := again.Head()
	c, _ := again.CommitObject(head.Hash())
	if c.Message != "add new.yaml" {
		t.Errorf("head commit after re-clone: %q", c.Message)
	}
	if got, err := testenv.ReadFile(e.Git.RepoPath("config"), "main", "apps/new.yaml"); err != nil || got != "kind: Secret\n" {
		t.Errorf("pushed file = %q, %v", got, err)
	}
	log, err := testenv.Log(e.Git.RepoPath("config"), "main")
	if err != nil || len(log) != 2 {
		t.Errorf("log has %d commits (%v), want 2", len(log), err)
	}

	// The other environment's deploy key is not authorized here: refused.
	wrongKey, err := testenv.SSHAuth(e.Git.User, other.Git.DeployKey, e.Git.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = gogit.Clone(memory.NewStorage(), memfs.New(), &gogit.CloneOptions{URL: url, Auth: wrongKey})
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("clone with a wrong key: err = %v, want an authentication failure", err)
	}
	// A known_hosts holding another server's host key: refused before any auth.
	wrongHost, err := testenv.SSHAuth(e.Git.User, e.Git.DeployKey, rewriteKnownHosts(t, other.Git.KnownHosts, other.Git.Addr, e.Git.Addr))
	if err != nil {
		t.Fatal(err)
	}
	_, err = gogit.Clone(memory.NewStorage(), memfs.New(), &gogit.CloneOptions{URL: url, Auth: wrongHost})
	if err == nil || !strings.Contains(err.Error(), "key mismatch") {
		t.Errorf("clone with a wrong host key: err = %v, want a host key mismatch", err)
	}
	// An empty known_hosts: unknown host, refused.
	empty := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(empty, nil, 0o644)
	unknown, _ := testenv.SSHAuth(e.Git.User, e.Git.DeployKey, empty)
	_, err = gogit.Clone(memory.NewStorage(), memfs.New(), &gogit.CloneOptions{URL: url, Auth: unknown})
	if err == nil || !strings.Contains(err.Error(), "key is unknown") {
		t.Errorf("clone with an unknown host: err = %v, want an unknown host key", err)
	}
}

// rewriteKnownHosts copies a known_hosts file, replacing host fromAddr by toAddr, so the
// file pins another server's key for toAddr.
func rewriteKnownHosts(t *testing.T, path, fromAddr, toAddr string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	from := "[" + strings.Replace(fromAddr, ":", "]:", 1)
	to := "[" + strings.Replace(toAddr, ":", "]:", 1)
	out := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(out, []byte(strings.ReplaceAll(string(b), from, to)), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func testRestricted(t *testing.T, e *testenv.Env) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, kubeconfig, err := e.Cluster.ServiceAccountConfig(ctx, "imagebot-system", "imagebot")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kubeconfig); err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("list configmaps before any grant: err = %v, want forbidden", err)
	}
	rules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Verbs: []string{"get", "list"}, Resources: []string{"configmaps"}}}
	if err := e.Cluster.Grant(ctx, "imagebot-system", "imagebot", "default", rules); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 50 { // RBAC is read from an informer: allow a moment
		if _, lastErr = client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); lastErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("list configmaps after the grant: %v", lastErr)
	}
	if _, err := client.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("listing secrets succeeded without a grant")
	}
	if _, err := client.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("listing configmaps in another namespace succeeded with a namespaced grant")
	}
}

// nginxDeployment is a Deployment "name" in default of replicas nginx pods, labelled
// app=name.
func nginxDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.16"}}},
			},
		},
	}
}
