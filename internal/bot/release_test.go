package bot_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/update"
)

const releaseManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: fluxdemo
  namespace: my-demo
  annotations:
    fluxcd.io/tag.flask: semver:~1.8
    fluxcd.io/tag.nginx: glob:1.*
    fluxcd.io/tag.sidecar: regex:[
LOCK
spec:
  template:
    spec:
      containers:
      - name: nginx
        image: r.example.com/library/nginx:1.16
      - name: flask
        image: r.example.com/team/flaskapp:1.8.0
      - name: sidecar
        image: r.example.com/team/sidecar:1
`

func TestReleaseDecide(t *testing.T) {
	now := time.Now()
	results := map[string]*scan.Result{
		"r.example.com/team/flaskapp": {Tags: []string{"1.8.0", "1.8.3", "1.9.0"}},
		"r.example.com/library/nginx": {Tags: []string{"1.16", "1.17"}, Images: map[string]scan.Image{
			"1.16": {Created: now.Add(-2 * time.Hour)}, "1.17": {Created: now.Add(-time.Hour)}}},
	}
	chosen := 0
	choose := func(_ context.Context, t update.Target) (*bot.Choice, error) {
		chosen++
		ref, _ := name.ParseReference(t.Image)
		res, ok := results[ref.Context().Name()]
		if !ok {
			return nil, bot.ErrNotScanned
		}
		return bot.Choose(t, res, now)
	}
	targets := func(locked bool) []update.Target {
		lock := ""
		if locked {
			lock = "    fluxcd.io/locked: 'true'\n    fluxcd.io/locked_msg: incident 42\n    fluxcd.io/locked_user: ana"
		}
		var f update.Finder
		ts, _ := f.FindBytes("apps/flask.yaml", []byte(strings.Replace(releaseManifest, "LOCK", lock, 1)))
		if len(ts) != 3 {
			t.Fatalf("targets: %+v", ts)
		}
		return ts
	}
	ref := func(s string) name.Reference { r, _ := name.ParseReference(s); return r }
	fluxdemo := update.Workload{Kind: "Deployment", Namespace: "my-demo", Name: "fluxdemo"}
	for _, tc := range []struct {
		name    string
		release bot.Release
		locked  bool
		want    []string // container=image of each decision
		err     error
		errText string
	}{
		{name: "an image", release: bot.Release{Workload: fluxdemo, Image: ref("r.example.com/team/flaskapp:1.9.0")},
			want: []string{"flask=r.example.com/team/flaskapp:1.9.0"}},
		{name: "the image it runs", release: bot.Release{Workload: fluxdemo, Image: ref("r.example.com/team/flaskapp:1.8.0")}},
		{name: "an image no container runs", release: bot.Release{Workload: fluxdemo, Image: ref("r.example.com/team/other:1")},
			err: bot.ErrNoContainer, errText: "release Deployment/my-demo/fluxdemo: no matching container: no container runs r.example.com/team/other (it has nginx=r.example.com/library/nginx:1.16, flask="},
		{name: "another container's image", release: bot.Release{Workload: fluxdemo, Container: "nginx", Image: ref("r.example.com/team/flaskapp:1.9.0")},
			err: bot.ErrNoContainer, errText: "no container nginx runs r.example.com/team/flaskapp"},
		{name: "no such workload", release: bot.Release{Workload: update.Workload{Kind: "Deployment", Namespace: "my-demo", Name: "nope"}, Image: ref("r.example.com/team/flaskapp:1.9.0")},
			err: update.ErrWorkloadNotFound, errText: "release Deployment/my-demo/nope: workload not found"},
		{name: "locked", locked: true, release: bot.Release{Workload: fluxdemo, Image: ref("r.example.com/team/flaskapp:1.9.0")},
			err: bot.ErrLocked, errText: "release Deployment/my-demo/fluxdemo: workload is locked (incident 42, by ana): unlock it or force the release"},
		{name: "locked, forced", locked: true, release: bot.Release{Workload: fluxdemo, Image: ref("r.example.com/team/flaskapp:1.9.0"), Force: true},
			want: []string{"flask=r.example.com/team/flaskapp:1.9.0"}},
		// Every image: flask by its semver range (not 1.9.0), nginx by its glob (newest
		// build), the sidecar's invalid policy is left alone.
		{name: "all images", release: bot.Release{Workload: fluxdemo},
			want: []string{"nginx=r.example.com/library/nginx:1.17", "flask=r.example.com/team/flaskapp:1.8.3"}},
		{name: "all images of a container", release: bot.Release{Workload: fluxdemo, Container: "flask"},
			want: []string{"flask=r.example.com/team/flaskapp:1.8.3"}},
		{name: "all images, no scan", release: bot.Release{Workload: fluxdemo, Container: "nginx"}, err: bot.ErrNotScanned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "all images, no scan" {
				delete(results, "r.example.com/library/nginx")
			}
			chosen = 0
			ds, err := tc.release.Decide(context.Background(), targets(tc.locked), choose)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.errText)) {
				t.Fatalf("err = %v, want %v (%q)", err, tc.err, tc.errText)
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.Target.Container+"="+d.Image.String())
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("decisions %v, want %v", got, tc.want)
			}
			if tc.release.Image != nil && chosen != 0 {
				t.Errorf("a release of a given image consulted the policies %d times", chosen)
			}
		})
	}
}

func TestParseWorkload(t *testing.T) {
	for in, want := range map[string]string{
		"fluxdemo":               "Deployment/fluxdemo",
		"my-demo/fluxdemo":       "Deployment/my-demo/fluxdemo",
		"StatefulSet/my-demo/db": "StatefulSet/my-demo/db",
		"StatefulSet//db":        "StatefulSet/db",
		"":                       "error",
		"a/b/c/d":                "error",
		"/fluxdemo":              "Deployment/fluxdemo",
		"Deployment/my-demo/":    "error",
		"my-demo/":               "error",
	} {
		w, err := bot.ParseWorkload(in)
		got := w.String()
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("ParseWorkload(%q) = %q (%v), want %q", in, got, err, want)
		}
	}
}
