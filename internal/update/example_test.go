package update_test

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/update"
)

const flask = `apiVersion: apps/v1
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
        image: nginx:1.16 # the proxy
      - name: flask
        image: "registry.example.com/team/flaskapp:develop-v1.8.0"
`

func ExampleFinder_FindBytes() {
	var f update.Finder
	targets, problems := f.FindBytes("apps/flask.yaml", []byte(flask))
	for _, t := range targets {
		fmt.Printf("%s:%d %s %s %s policy=%s automated=%v\n", t.File, t.Line, t.Workload, t.Container, t.Image, t.Policy, t.Automated)
	}
	fmt.Println(len(problems), "problems")
	// Output:
	// apps/flask.yaml:14 Deployment/my-demo/fluxdemo nginx nginx:1.16 policy=glob:* automated=true
	// apps/flask.yaml:16 Deployment/my-demo/fluxdemo flask registry.example.com/team/flaskapp:develop-v1.8.0 policy=glob:develop-v* automated=true
	// 0 problems
}

func ExampleFinder_EditBytes() {
	var f update.Finder
	targets, _ := f.FindBytes("apps/flask.yaml", []byte(flask))
	out, changes, err := f.EditBytes("apps/flask.yaml", []byte(flask), []update.Decision{
		{Target: targets[1], Image: name.MustParseReference("registry.example.com/team/flaskapp:develop-v1.8.1")},
		// Docker Hub's canonical name is written back the way the file spells it.
		{Target: targets[0], Image: name.MustParseReference("index.docker.io/library/nginx:1.17")},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range changes {
		fmt.Println(c)
	}
	lines := strings.Split(string(out), "\n")
	fmt.Println(strings.Join(lines[12:16], "\n"))
	// Output:
	// apps/flask.yaml:16 Deployment/my-demo/fluxdemo flask: registry.example.com/team/flaskapp:develop-v1.8.0 -> registry.example.com/team/flaskapp:develop-v1.8.1
	// apps/flask.yaml:14 Deployment/my-demo/fluxdemo nginx: nginx:1.16 -> nginx:1.17
	//       - name: nginx
	//         image: nginx:1.17 # the proxy
	//       - name: flask
	//         image: "registry.example.com/team/flaskapp:develop-v1.8.1"
}

func ExampleFinder_AnnotateBytes() {
	var f update.Finder
	locked := true
	out, changes, err := f.AnnotateBytes("apps/flask.yaml", []byte(flask), update.AnnotationEdit{
		Workload:  update.Workload{Kind: "Deployment", Namespace: "my-demo", Name: "fluxdemo"},
		Locked:    &locked,
		LockedMsg: "hold for the demo",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range changes {
		fmt.Println(c)
	}
	lines := strings.Split(string(out), "\n")
	fmt.Println(strings.Join(lines[2:10], "\n"))
	// Output:
	// apps/flask.yaml:7 Deployment/my-demo/fluxdemo: flux.weave.works/locked="true"
	// apps/flask.yaml:7 Deployment/my-demo/fluxdemo: flux.weave.works/locked_msg="hold for the demo"
	// metadata:
	//   name: fluxdemo
	//   namespace: my-demo
	//   annotations:
	//     flux.weave.works/automated: 'true'
	//     flux.weave.works/tag.flask: glob:develop-v*
	//     flux.weave.works/locked: "true"
	//     flux.weave.works/locked_msg: hold for the demo
}

func ExampleMarkerPolicy() {
	// Markers put a policy on any scalar: Flux v2's $imagepolicy (resolved through
	// Finder.Markers) and imagebot's inline $imagebot (the policy is in the comment).
	values := `image:
  repository: ghcr.io/org/web # {"$imagepolicy": "flux-system:web:name"}
  tag: 1.2.0                  # {"$imagepolicy": "flux-system:web:tag"}
worker:
  image: ghcr.io/org/worker:0.9.0 # {"$imagebot": "semver:<1.0"}
`
	f := update.Finder{Markers: map[string]update.MarkerPolicy{"flux-system:web": {Policy: "semver:~1.2"}}}
	targets, _ := f.FindBytes("values.yaml", []byte(values))
	for _, t := range targets {
		fmt.Printf("%s %s policy=%s fields=%d\n", t.Source, t.Image, t.Policy, len(t.Fields))
	}
	// Output:
	// imagepolicy ghcr.io/org/web:1.2.0 policy=semver:~1.2 fields=2
	// imagebot-inline ghcr.io/org/worker:0.9.0 policy=semver:<1.0 fields=1
}
