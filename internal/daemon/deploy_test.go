package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"imagebot.dev/imagebot/internal/demo"
	ksync "imagebot.dev/imagebot/internal/sync"
	"imagebot.dev/imagebot/internal/testenv"
)

// TestDeployManifests applies config/deploy to a real cluster (server-side, through the
// in-process kustomize build) and syncs the demo repository with the credentials its RBAC
// gives imagebot's ServiceAccount: allowed kinds apply, others are refused by name.
func TestDeployManifests(t *testing.T) {
	env := testenv.New(t, testenv.Options{Cluster: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	admin, err := ksync.New(env.Cluster.Config, ksync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := admin.Render(ctx, "../../config", []string{"deploy"}, "")
	if err != nil {
		t.Fatal(err)
	}
	install, err := ksync.NewSyncer(admin, ksync.SyncerOptions{Name: "imagebot-install", InventoryNamespace: "default", HealthTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := install.Sync(ctx, "install", objs); err != nil || res.Err != nil {
		t.Fatalf("apply config/deploy: %v %v", err, res)
	}
	dep, err := env.Cluster.Client.AppsV1().Deployments("imagebot-system").Get(ctx, "imagebot", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if dep.Spec.Template.Spec.ServiceAccountName != "imagebot" || c.SecurityContext == nil ||
		!*c.SecurityContext.ReadOnlyRootFilesystem || !*dep.Spec.Template.Spec.SecurityContext.RunAsNonRoot ||
		c.ReadinessProbe == nil || c.LivenessProbe == nil || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("the Deployment is not locked down as intended: %+v", c)
	}
	if _, err := env.Cluster.Client.CoreV1().ConfigMaps("imagebot-system").Get(ctx, "imagebot-repos", metav1.GetOptions{}); err != nil {
		t.Errorf("repository configs: %v", err)
	}
	// The persistent variant mounts a PVC as the data dir.
	pobjs, err := admin.Render(ctx, "../../config", []string{"deploy-persistent"}, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range pobjs {
		if o.GetKind() == "Deployment" {
			vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
			for _, v := range vols {
				if vm := v.(map[string]any); vm["name"] == "data" && vm["persistentVolumeClaim"] != nil {
					found = true
				}
			}
		}
	}
	if !found {
		t.Error("config/deploy-persistent does not mount the PVC as the data dir")
	}

	// imagebot's own identity, as the Deployment would run with it.
	cfg, _, err := env.Cluster.ServiceAccountConfig(ctx, "imagebot-system", "imagebot")
	if err != nil {
		t.Fatal(err)
	}
	restricted, err := ksync.New(cfg, ksync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "apps"), 0o755)
	os.WriteFile(filepath.Join(dir, "apps", "flask.yaml"), []byte(strings.ReplaceAll(demo.Seed, "REG", "registry.example.com")), 0o644)
	syncer, err := ksync.NewSyncer(restricted, ksync.SyncerOptions{Name: "demo", InventoryNamespace: "imagebot-system", Prune: true, HealthTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res, err := syncer.SyncDir(ctx, "rev1", dir)
	if err != nil || res.Err != nil {
		t.Fatalf("sync the demo with imagebot's RBAC: %v %v", err, res)
	}
	if _, err := env.Cluster.Client.AppsV1().Deployments("my-demo").Get(ctx, "fluxdemo", metav1.GetOptions{}); err != nil {
		t.Errorf("fluxdemo: %v", err)
	}
	// A kind the least-privilege role does not grant is refused, by name.
	os.WriteFile(filepath.Join(dir, "apps", "role.yaml"), []byte("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: sneaky\nrules: []\n"), 0o644)
	res, err = syncer.SyncDir(ctx, "rev2", dir)
	if err == nil {
		err = res.Err
	}
	if err == nil || !strings.Contains(err.Error(), "ClusterRole/sneaky") || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("a ClusterRole with the restricted identity: err = %v", err)
	}
}
