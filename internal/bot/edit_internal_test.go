package bot

import (
	"testing"

	"imagebot.dev/imagebot/internal/update"
)

func TestEditMessages(t *testing.T) {
	w := update.Workload{Kind: "Deployment", Namespace: "my-demo", Name: "fluxdemo"}
	flask := update.Change{File: "apps/flask.yaml", Line: 14, Workload: w, Container: "flask",
		Old: "r.example.com/team/flaskapp:develop-v1.8.0", New: "r.example.com/team/flaskapp:develop-v1.8.1"}
	nginx := update.Change{File: "apps/flask.yaml", Line: 12, Workload: w, Container: "nginx", Old: "nginx:1.16", New: "nginx:1.17"}
	yes, no := true, false
	for _, tc := range []struct{ got, want string }{
		{releaseMessage(&update.ChangeSet{Changes: []update.Change{flask}}, "alice"),
			"Release my-demo/fluxdemo flask to develop-v1.8.1 (by alice)\n\n- apps/flask.yaml:14 Deployment/my-demo/fluxdemo flask: r.example.com/team/flaskapp:develop-v1.8.0 -> r.example.com/team/flaskapp:develop-v1.8.1\n"},
		{releaseMessage(&update.ChangeSet{Changes: []update.Change{nginx, flask}}, ""),
			"Release 2 images in my-demo/fluxdemo\n\n- " + nginx.String() + "\n- " + flask.String() + "\n"},
		{annotationMessage(update.AnnotationEdit{Workload: w, Locked: &yes, LockedMsg: "bad\nrelease"}, &update.ChangeSet{}, "alice"),
			"Lock Deployment/my-demo/fluxdemo: bad release (by alice)\n\n"},
		{annotationMessage(update.AnnotationEdit{Workload: w, Locked: &no}, &update.ChangeSet{}, ""), "Unlock Deployment/my-demo/fluxdemo\n\n"},
		{annotationMessage(update.AnnotationEdit{Workload: w, Automated: &yes}, &update.ChangeSet{}, "bob"), "Automate Deployment/my-demo/fluxdemo (by bob)\n\n"},
		{annotationMessage(update.AnnotationEdit{Workload: w, Automated: &no}, &update.ChangeSet{}, ""), "Deautomate Deployment/my-demo/fluxdemo\n\n"},
		{annotationMessage(update.AnnotationEdit{Workload: w, Tags: map[string]string{"flask": "semver:~1.8"}}, &update.ChangeSet{}, ""),
			"Set the policy of Deployment/my-demo/fluxdemo flask to semver:~1.8\n\n"},
		{annotationMessage(update.AnnotationEdit{Workload: w, Tags: map[string]string{"flask": ""}}, &update.ChangeSet{}, ""),
			"Remove the policy of Deployment/my-demo/fluxdemo flask\n\n"},
	} {
		if tc.got != tc.want {
			t.Errorf("message:\n%q\nwant:\n%q", tc.got, tc.want)
		}
	}
}
