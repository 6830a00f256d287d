package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"imagebot.dev/imagebot/internal/daemon"
	"imagebot.dev/imagebot/internal/testenv"
	"imagebot.dev/imagebot/internal/update"
)

// get returns the body of a GET of url.
func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}

func getJSON(ctx context.Context, url string, v any) error {
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(body), v)
}

const (
	ns         = "my-demo"
	deployment = "fluxdemo"
	file       = "apps/flask.yaml"
)

func (w *World) say(format string, args ...any) { fmt.Fprintf(w.Out, format+"\n", args...) }

// step runs one narrated step and says how long it took.
func (w *World) step(title string, f func() error) error {
	w.say("\n==> %s", title)
	start := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", title, err)
	}
	w.say("    done in %v", time.Since(start).Round(10*time.Millisecond))
	return nil
}

// waitFor polls cond every 50ms until it holds, ctx ends or limit passes.
func waitFor(ctx context.Context, limit time.Duration, what string, cond func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	last := ""
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		last = state
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting %v for %s: last seen: %s", limit, what, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (w *World) deployment(ctx context.Context) (*appsv1.Deployment, error) {
	return w.Env.Cluster.Client.AppsV1().Deployments(ns).Get(ctx, deployment, metav1.GetOptions{})
}

func flaskImage(d *appsv1.Deployment) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "flask" {
			return c.Image
		}
	}
	return ""
}

// rolledOut says whether the deployment runs image with every replica updated and ready.
func (w *World) rolledOut(ctx context.Context, image string, replicas int32) (bool, string) {
	d, err := w.deployment(ctx)
	if err != nil {
		return false, err.Error()
	}
	st := d.Status
	state := fmt.Sprintf("image %s, replicas %d, updated %d, ready %d", flaskImage(d), *d.Spec.Replicas, st.UpdatedReplicas, st.ReadyReplicas)
	return flaskImage(d) == image && *d.Spec.Replicas == replicas && st.ObservedGeneration == d.Generation &&
		st.UpdatedReplicas == replicas && st.ReadyReplicas == replicas && st.Replicas == replicas, state
}

func (w *World) image(tag string) string { return w.Env.Registry.Host + "/team/flaskapp:" + tag }

func (w *World) gitFile() string {
	s, _ := testenv.ReadFile(w.RepoPath, "main", file)
	return s
}

func (w *World) kubectlRun(ctx context.Context, args ...string) error {
	args = append([]string{"--kubeconfig", w.Env.Cluster.Kubeconfig}, args...)
	w.say("    $ kubectl %s", strings.Join(args[2:], " "))
	out, err := exec.CommandContext(ctx, w.kubectl, args...).CombinedOutput()
	w.say("    %s", strings.TrimSpace(string(out)))
	if err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args[2:], " "), err)
	}
	return nil
}

// Walkthrough runs the user's day and fails on the first step that does not happen.
func (w *World) Walkthrough(ctx context.Context) error {
	old, next := w.image("develop-v1.8.0"), w.image("develop-v1.8.1")
	steps := []struct {
		title string
		run   func() error
	}{
		{"first sync: the seed repository is applied and the pods run", func() error {
			err := waitFor(ctx, 60*time.Second, "the fluxdemo rollout", func() (bool, string) { return w.rolledOut(ctx, old, 1) })
			if err != nil {
				return err
			}
			pods, err := w.Env.Cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=fluxdemo"})
			if err != nil {
				return err
			}
			for _, p := range pods.Items {
				w.say("    pod %s: %s on %s", p.Name, p.Status.Phase, p.Spec.NodeName)
				if p.Status.Phase != corev1.PodRunning {
					return fmt.Errorf("pod %s is %s", p.Name, p.Status.Phase)
				}
			}
			_, err = w.Env.Cluster.Client.CoreV1().ConfigMaps(ns).Get(ctx, "nginx-config", metav1.GetOptions{})
			return err
		}},
		{"CI pushes flaskapp:develop-v1.8.1: the registry's webhook -> a commit -> the Deployment rolls", func() error {
			before := w.gitFile()
			if _, err := w.Env.Registry.Push(ctx, "team/flaskapp", "develop-v1.8.1", testenv.ImageSpec{Created: w.t0.Add(time.Hour)}); err != nil {
				return err
			}
			pushed := time.Now()
			if err := waitFor(ctx, 30*time.Second, "the commit", func() (bool, string) {
				return strings.Contains(w.gitFile(), next+"\n"), "not committed yet"
			}); err != nil {
				return err
			}
			committed := time.Since(pushed)
			head, _ := testenv.Head(w.RepoPath, "main")
			w.say("    commit %s (%v after the push): %s", head.Hash.String()[:12], committed.Round(time.Millisecond), strings.SplitN(head.Message, "\n", 2)[0])
			for _, line := range strings.Split(strings.TrimRight(update.LineDiff(file, []byte(before), []byte(w.gitFile())), "\n"), "\n") {
				w.say("    %s", line)
			}
			if err := waitFor(ctx, 60*time.Second, "the rollout of develop-v1.8.1", func() (bool, string) { return w.rolledOut(ctx, next, 1) }); err != nil {
				return err
			}
			w.say("    the Deployment runs %s (%v after the push)", next, time.Since(pushed).Round(time.Millisecond))
			return waitFor(ctx, 10*time.Second, "imagebot's Event on the Deployment for the update", func() (bool, string) {
				evs, err := w.Env.Cluster.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + deployment})
				if err != nil {
					return false, err.Error()
				}
				for _, e := range evs.Items {
					if e.Source.Component == "imagebot" && e.Reason == "Configured" && strings.Contains(e.Message, head.Hash.String()[:12]) {
						w.say("    event: %s %s: %s", e.Type, e.Reason, e.Message)
						return true, ""
					}
				}
				return false, fmt.Sprintf("%d events, none from imagebot", len(evs.Items))
			})
		}},
		{"someone scales the Deployment by hand: imagebot puts it back", func() error {
			if err := w.kubectlRun(ctx, "-n", ns, "scale", "deployment/"+deployment, "--replicas=4"); err != nil {
				return err
			}
			return waitFor(ctx, 30*time.Second, "replicas back to 1", func() (bool, string) { return w.rolledOut(ctx, next, 1) })
		}},
		{"a human reverts the update in git: the cluster follows and imagebot does not fight it", func() error {
			revert := strings.Replace(w.gitFile(), next, old, 1)
			h, err := testenv.CommitFiles(w.RepoPath, "main", map[string]string{file: revert}, "Revert flask to develop-v1.8.0 (a human)")
			if err != nil {
				return err
			}
			w.say("    human commit %s", h.String()[:12])
			if err := waitFor(ctx, 60*time.Second, "the rollback in the cluster", func() (bool, string) { return w.rolledOut(ctx, old, 1) }); err != nil {
				return err
			}
			w.say("    the Deployment runs %s again; watching git for a fight for 12s (longer than a git poll)", old)
			time.Sleep(12 * time.Second)
			head, _ := testenv.Head(w.RepoPath, "main")
			if head.Hash != h {
				return fmt.Errorf("imagebot committed %s after the revert: %s", head.Hash, head.Message)
			}
			return nil
		}},
		{"what imagebot reports: " + w.Daemon + "/api/v1/status and /metrics", func() error {
			head, err := testenv.Head(w.RepoPath, "main")
			if err != nil {
				return err
			}
			var st daemon.Status
			if err := waitFor(ctx, 30*time.Second, "the sync of the revert reported Ready", func() (bool, string) {
				if err := getJSON(ctx, w.Daemon+"/api/v1/status", &st); err != nil {
					return false, err.Error()
				}
				if len(st.Syncs) != 1 {
					return false, fmt.Sprintf("%d sync statuses", len(st.Syncs))
				}
				s := st.Syncs[0]
				return s.Revision == head.Hash.String() && s.Status == "Ready", s.Status + " at " + s.Revision
			}); err != nil {
				return err
			}
			r := st.Repositories[0]
			w.say("    repository %s at %.12s; sync %s: %s", r.Repository, r.Revision, st.Syncs[0].Status, st.Syncs[0].Message)
			for _, t := range r.Targets {
				w.say("    %s %s runs %s (policy %s; best %s)", t.Workload, t.Container, t.Image, t.Policy, t.Best)
				if t.Reason != "" {
					w.say("      why not the best: %s", t.Reason)
				}
			}
			metrics, err := get(ctx, w.Daemon+"/metrics")
			if err != nil {
				return err
			}
			for _, want := range []string{`imagebot_pushes_total{repository="demo"} 1`, `imagebot_sync_status{repository="demo",status="Ready"} 1`,
				`imagebot_syncs_total{repository="demo",result="ok"}`, `imagebot_sync_objects_total{action="configured",repository="demo"}`} {
				line := ""
				for _, l := range strings.Split(metrics, "\n") {
					if strings.HasPrefix(l, want) {
						line = l
					}
				}
				if line == "" {
					return fmt.Errorf("/metrics has no %s", want)
				}
				w.say("    %s", line)
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := w.step(s.title, s.run); err != nil {
			return err
		}
	}
	return nil
}
