package sync_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	ksync "imagebot.dev/imagebot/internal/sync"
	"imagebot.dev/imagebot/internal/testenv"
)

// One control plane serves the package's tests (each test works in its own namespaces and
// with its own Syncer name); it starts on first use and stops in TestMain.
var (
	envOnce stdsync.Once
	env     *testenv.Env
	envDir  string
	envErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		env.Stop()
	}
	if envDir != "" {
		os.RemoveAll(envDir)
	}
	os.Exit(code)
}

const inventoryNS = "imagebot-system"

func cluster(t testing.TB) *testenv.Cluster {
	t.Helper()
	envOnce.Do(func() {
		if envDir, envErr = os.MkdirTemp("", "imagebot-sync-test-"); envErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if env, envErr = testenv.Start(ctx, envDir, testenv.Options{Cluster: true}); envErr != nil {
			return
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: inventoryNS}}
		_, envErr = env.Cluster.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	})
	if envErr != nil {
		t.Fatalf("testenv: %v", envErr)
	}
	return env.Cluster
}

// counter counts the requests a client makes, by method, telling dry runs apart.
type counter struct {
	all, writes, dryRuns atomic.Int64
}

func (c *counter) reset() { c.all.Store(0); c.writes.Store(0); c.dryRuns.Store(0) }

func (c *counter) String() string {
	return fmt.Sprintf("%d requests (%d writes, %d dry runs)", c.all.Load(), c.writes.Load(), c.dryRuns.Load())
}

type countingRT struct {
	c    *counter
	next http.RoundTripper
}

func (rt countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Query().Get("watch") != "true" {
		rt.c.all.Add(1)
		switch {
		case r.Method == http.MethodGet:
		case r.URL.Query().Get("dryRun") != "":
			rt.c.dryRuns.Add(1)
		default:
			rt.c.writes.Add(1)
		}
	}
	return rt.next.RoundTrip(r)
}

// countedConfig returns a copy of cfg whose requests c counts (watches aside).
func countedConfig(cfg *rest.Config, c *counter) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingRT{c: c, next: rt} }
	return cfg
}

func newManager(t testing.TB, cfg *rest.Config) *ksync.Manager {
	t.Helper()
	m, err := ksync.New(cfg, ksync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newSyncer(t testing.TB, m *ksync.Manager, opts ksync.SyncerOptions) *ksync.Syncer {
	t.Helper()
	if opts.HealthTimeout == 0 {
		opts.HealthTimeout = time.Minute
	}
	s, err := ksync.NewSyncer(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// writeFiles writes files (path → content; empty removes) under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if content == "" {
			if err := os.Remove(full); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// kubectl runs kubectl as the user against the test cluster.
func kubectl(t testing.TB, args ...string) string {
	t.Helper()
	return kubectlEnv(t, nil, args...)
}

// kubectlEnv runs kubectl with extra environment variables (KUBE_EDITOR for kubectl edit).
func kubectlEnv(t testing.TB, extraEnv []string, args ...string) string {
	t.Helper()
	bin, err := testenv.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", env.Cluster.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), extraEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// eventually polls cond every 50ms until it returns "" or timeout passes, then fails with its
// last answer.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() string) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < timeout {
		if last = cond(); last == "" {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %s", what, timeout, last)
	return 0
}

var (
	deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	cmGVR     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	nsGVR     = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// get reads a live object as the admin (nil when absent).
func get(t testing.TB, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	dc, err := dynamic.NewForConfig(env.Cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	var ri dynamic.ResourceInterface = dc.Resource(gvr)
	if ns != "" {
		ri = dc.Resource(gvr).Namespace(ns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := ri.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return u
}

func nestedString(u *unstructured.Unstructured, fields ...string) string {
	if u == nil {
		return "<absent>"
	}
	v, found, err := unstructured.NestedFieldNoCopy(u.Object, fields...)
	if !found || err != nil {
		return "<unset>"
	}
	return fmt.Sprint(v)
}

// ensureNamespace creates namespace ns unless it exists.
func ensureNamespace(t testing.TB, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := env.Cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}
