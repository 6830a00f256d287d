package update

import (
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// workloadKinds maps a workload kind to the API groups it is accepted in and the path of
// its pod spec. Older groups (extensions, apps/v1beta*) are accepted as Flux v1 did.
var workloadKinds = map[string]struct {
	groups  []string
	podSpec []string
}{
	"Deployment":  {[]string{"apps", "extensions"}, []string{"spec", "template", "spec"}},
	"StatefulSet": {[]string{"apps"}, []string{"spec", "template", "spec"}},
	"DaemonSet":   {[]string{"apps", "extensions"}, []string{"spec", "template", "spec"}},
	"ReplicaSet":  {[]string{"apps", "extensions"}, []string{"spec", "template", "spec"}},
	"Job":         {[]string{"batch"}, []string{"spec", "template", "spec"}},
	"CronJob":     {[]string{"batch"}, []string{"spec", "jobTemplate", "spec", "template", "spec"}},
	"Pod":         {[]string{""}, []string{"spec"}},
}

// podSpecPath returns the path of the pod spec of a workload kind, or nil when kind (in
// that API group) is not a workload.
func podSpecPath(kind, group string) []string {
	k, ok := workloadKinds[kind]
	if !ok {
		return nil
	}
	for _, g := range k.groups {
		if g == group {
			return k.podSpec
		}
	}
	return nil
}

// workload finds the containers and initContainers of a workload.
func (s *scanner) workload(obj *yaml.Node, path string, w Workload, ann *annotations, specPath []string, aliased bool) []*target {
	spec := obj
	specP := path
	for _, key := range specPath {
		var al bool
		spec, al = mapMapping(spec, key)
		aliased = aliased || al
		specP = joinPath(specP, key)
		if spec == nil {
			break
		}
	}
	known := map[string]bool{}
	var out []*target
	var pullSecrets []string
	serviceAccount := ""
	if spec != nil {
		if _, ps, _ := mapGet(spec, "imagePullSecrets"); ps != nil && ps.Kind == yaml.SequenceNode {
			for _, item := range ps.Content {
				if item.Kind == yaml.MappingNode {
					if n := mapScalar(item, "name"); n != "" {
						pullSecrets = append(pullSecrets, n)
					}
				}
			}
		}
		serviceAccount = mapScalar(spec, "serviceAccountName")
	}
	for _, list := range []struct {
		key string
		src Source
	}{{"containers", SourceContainer}, {"initContainers", SourceInitContainer}} {
		_, seq, al := mapGet(spec, list.key)
		if seq == nil || seq.Kind != yaml.SequenceNode {
			continue
		}
		for i, item := range seq.Content {
			c, al2 := deref(item)
			if c == nil || c.Kind != yaml.MappingNode {
				continue
			}
			name := mapScalar(c, "name")
			known[name] = true
			_, img, al3 := mapGet(c, "image")
			if !isStr(img) {
				continue
			}
			p := joinPath(indexPath(joinPath(specP, list.key), i), "image")
			f, fn := field(img, PartRef, p, c, aliased || al || al2 || al3)
			t, err := s.newTarget(w, name, list.src, []Field{f}, []fieldNode{fn}, refParts{})
			t.PullSecrets, t.ServiceAccount = pullSecrets, serviceAccount
			applyAnnotations(t, ann)
			spec, src, line := ann.policyFor(name)
			if err != nil {
				if t.Automated || spec != "" && src != "default" {
					s.problems = append(s.problems, Problem{File: s.file, Line: img.Line, Column: img.Column, Field: p, Err: err})
				}
				continue
			}
			s.setPolicy(t, spec, src, line, ann.path+"["+src+"]")
			out = append(out, t)
		}
	}
	if spec != nil || len(ann.tags) > 0 {
		s.problems = append(s.problems, ann.checkContainers(known)...)
	}
	return out
}
