package daemon_test

import (
	"strings"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/testenv"
)

// TestMarkersAndPaths: the config's marker map resolves Flux v2 "$imagepolicy" markers, and
// spec.git.paths bounds where automation looks: a new tag updates the Deployment and the
// marked kustomization, not an automated Deployment outside the paths.
func TestMarkersAndPaths(t *testing.T) {
	w := startWorldWith(t, func(o *daemon.Options) { o.ConfigPoll = 100 * time.Millisecond }, "")
	reg := w.env.Registry.Host
	kustomization := "images:\n- name: " + reg + "/team/flaskapp\n  newTag: develop-v1.8.0 # {\"$imagepolicy\": \"my-demo:flask:tag\"}\n"
	outside := strings.ReplaceAll(seed, "REG", reg)
	if _, err := testenv.CommitFiles(w.repoPath, "main", map[string]string{
		"deploy/kustomization.yaml": kustomization, "other/flask.yaml": outside}, "a human"); err != nil {
		t.Fatal(err)
	}
	w.setConfig(t, strings.Replace(w.config(t), "    auth:\n", "    paths: [apps, deploy]\n    auth:\n", 1)+
		"  markers:\n    \"my-demo:flask\": {image: "+reg+"/team/flaskapp, policy: \"glob:develop-v*\"}\n")
	w.waitStatus(t, 10*time.Second, func(st daemon.Status) bool {
		return len(st.Repositories) == 1 && len(st.Repositories[0].Targets) == 2
	})
	w.pushAndWait(t, "develop-v1.8.1", w.t0.Add(time.Hour))
	// The commit that updated apps/flask.yaml updated the marker too, in the same commit.
	got, err := testenv.ReadFile(w.repoPath, "main", "deploy/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(kustomization, "develop-v1.8.0", "develop-v1.8.1", 1); got != want {
		t.Errorf("the marked kustomization:\n%s\nwant\n%s", got, want)
	}
	if got, _ := testenv.ReadFile(w.repoPath, "main", "other/flask.yaml"); got != outside {
		t.Errorf("a Deployment outside spec.git.paths was changed:\n%s", got)
	}
}
