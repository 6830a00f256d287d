package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"

	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/policy"
)

// ErrInvalid is wrapped by every error about a config file's content.
var ErrInvalid = errors.New("invalid config")

// Load reads every Repository in paths: files (one or more YAML documents each), or
// directories of *.yaml and *.yml files (not recursive, in name order). Names must be unique
// across all of them.
func Load(paths ...string) ([]*Repository, error) {
	var files []string
	for _, p := range paths {
		fs, err := configFiles(p)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	var out []*Repository
	var errs []error
	seen := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("load config: %w", err))
			continue
		}
		repos, err := Parse(f, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range repos {
			if other, dup := seen[r.Metadata.Name]; dup {
				errs = append(errs, fmt.Errorf("%s: %w: repository name %q is also used in %s", f, ErrInvalid, r.Metadata.Name, other))
				continue
			}
			seen[r.Metadata.Name] = f
			out = append(out, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load config %s: %w: no Repository found", strings.Join(paths, ", "), ErrInvalid)
	}
	return out, nil
}

// configFiles is path itself, or the config files of the directory path.
func configFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	var files []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml") && !strings.HasPrefix(e.Name(), ".") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(files)
	return files, nil
}

// Parse reads the Repository documents of one file. Unknown fields are errors; every error
// names the file and line.
func Parse(file string, data []byte) ([]*Repository, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var out []*Repository
	var errs []error
	for i := 0; ; i++ {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w: %v", file, ErrInvalid, err)
		}
		if len(doc.Content) == 0 || (doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null") {
			continue
		}
		r := &Repository{File: file}
		if err := decodeStrict(&doc, r); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w: %v", file, ErrInvalid, err))
			continue
		}
		r.setDefaults()
		for _, problem := range r.validate() {
			errs = append(errs, fmt.Errorf("%s:%d: %w: %s: %s", file, lineOf(&doc, problem.field), ErrInvalid, problem.field, problem.msg))
		}
		out = append(out, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// decodeStrict decodes one document node, refusing unknown fields (yaml.Node.Decode has no
// KnownFields option, and re-encoding would lose the file's line numbers).
func decodeStrict(doc *yaml.Node, r *Repository) error {
	if err := unknownFields(doc.Content[0], reflect.TypeOf(r).Elem(), ""); err != nil {
		return err
	}
	return doc.Decode(r)
}

// unknownFields reports the first mapping key of n that the type t has no field for.
func unknownFields(n *yaml.Node, t reflect.Type, at string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		if t == reflect.TypeOf(Duration{}) {
			return nil
		}
		fields := map[string]reflect.Type{}
		var known []string
		for i := range t.NumField() {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if tag != "" && tag != "-" {
				fields[tag] = t.Field(i).Type
				known = append(known, tag)
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			ft, ok := fields[k]
			if !ok {
				where := "the top level"
				if at != "" {
					where = at
				}
				return fmt.Errorf("line %d: unknown field %q in %s (known: %s)", n.Content[i].Line, k, where, strings.Join(known, ", "))
			}
			if err := unknownFields(n.Content[i+1], ft, strings.TrimPrefix(at+"."+k, ".")); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			if err := unknownFields(c, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := unknownFields(n.Content[i+1], t.Elem(), at+"."+n.Content[i].Value); err != nil {
				return err
			}
		}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

type problem struct{ field, msg string }

func (r *Repository) setDefaults() {
	s := &r.Spec
	if s.Git.Branch == "" {
		s.Git.Branch = "main"
	}
	if s.Sync.MaxPruneFraction == 0 {
		s.Sync.MaxPruneFraction = 0.5
	}
	t := true
	if s.Sync.Enabled == nil {
		s.Sync.Enabled = &t
	}
	if s.Sync.Prune == nil {
		s.Sync.Prune = &t
	}
}

func (r *Repository) validate() []problem {
	var ps []problem
	add := func(field, format string, args ...any) { ps = append(ps, problem{field, fmt.Sprintf(format, args...)}) }
	if r.APIVersion != APIVersion {
		add("apiVersion", "is %q, want %q", r.APIVersion, APIVersion)
	}
	if r.Kind != Kind {
		add("kind", "is %q, want %q", r.Kind, Kind)
	}
	if !nameRE.MatchString(r.Metadata.Name) {
		add("metadata.name", "%q is not a name: lower-case letters, digits and '-', at most 63", r.Metadata.Name)
	}
	g := r.Spec.Git
	switch scheme := gitScheme(g.URL); scheme {
	case "":
		add("spec.git.url", "is required")
	case "ssh":
		if g.Auth.SSHKeyFile == "" {
			add("spec.git.auth.sshKeyFile", "is required for an ssh URL (the deploy key)")
		}
		if g.Auth.KnownHostsFile == "" && !g.Auth.InsecureIgnoreHostKey {
			add("spec.git.auth.knownHostsFile", "is required for an ssh URL (strict host key checking), unless insecureIgnoreHostKey is set")
		}
	case "https", "http", "file":
	default:
		add("spec.git.url", "scheme %q is not supported (ssh, https, http, file)", scheme)
	}
	for i, p := range g.Paths {
		c := path.Clean(p)
		if path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
			add(fmt.Sprintf("spec.git.paths[%d]", i), "%q leaves the repository", p)
		}
	}
	if g.Depth < 0 {
		add("spec.git.depth", "is negative")
	}
	if err := git.CheckMessageTemplate(g.Commit.MessageTemplate); err != nil && g.Commit.MessageTemplate != "" {
		add("spec.git.commit.messageTemplate", "%v", err)
	}
	hosts := map[string]bool{}
	for i, reg := range r.Spec.Registries {
		f := fmt.Sprintf("spec.registries[%d]", i)
		switch {
		case reg.Host == "":
			add(f+".host", "is required")
		case hosts[reg.Host]:
			add(f+".host", "%q is listed twice", reg.Host)
		}
		hosts[reg.Host] = true
		if reg.RPS < 0 || reg.Burst < 0 || reg.PageSize < 0 {
			add(f, "rps, burst and pageSize must not be negative")
		}
	}
	for field, globs := range map[string][]string{"spec.images.include": r.Spec.Images.Include, "spec.images.exclude": r.Spec.Images.Exclude} {
		for i, gl := range globs {
			if gl == "" {
				add(fmt.Sprintf("%s[%d]", field, i), "is empty")
			}
		}
	}
	for i, iv := range r.Spec.Images.Intervals {
		if iv.Image == "" {
			add(fmt.Sprintf("spec.images.intervals[%d].image", i), "is required")
		}
		if iv.Interval.Duration == 0 {
			add(fmt.Sprintf("spec.images.intervals[%d].interval", i), "is required")
		}
	}
	for _, key := range sortedKeys(r.Spec.Markers) {
		m := r.Spec.Markers[key]
		f := "spec.markers." + key
		if ns, n, ok := strings.Cut(key, ":"); !ok || ns == "" || n == "" {
			add(f, "marker names are \"namespace:name\"")
		}
		if _, err := name.NewRepository(m.Image); err != nil {
			add(f+".image", "%q is not an image repository: %v", m.Image, err)
		}
		if _, err := policy.Parse(m.Policy); err != nil {
			add(f+".policy", "%v", err)
		}
	}
	if r.Spec.Scan.TagCap < 0 {
		add("spec.scan.tagCap", "is negative")
	}
	if p := r.Spec.Scan.Platform; p != "" && strings.Count(p, "/") < 1 {
		add("spec.scan.platform", "%q is not os/arch[/variant]", p)
	}
	for i, n := range r.Spec.Notifications {
		f := fmt.Sprintf("spec.notifications[%d]", i)
		if n.URLFile == "" {
			add(f+".urlFile", "is required (a file holding the webhook URL)")
		}
		for j, e := range n.Events {
			if e != "update" && e != "push-failed" && e != "sync-failed" {
				add(fmt.Sprintf("%s.events[%d]", f, j), "%q is not one of update, push-failed, sync-failed", e)
			}
		}
		if n.Template != "" {
			if _, err := template.New("").Parse(n.Template); err != nil {
				add(f+".template", "%v", err)
			}
		}
	}
	if f := r.Spec.Sync.MaxPruneFraction; f < 0 || f > 1 {
		add("spec.sync.maxPruneFraction", "%v is not between 0 and 1", f)
	}
	for i, k := range r.Spec.Sync.PruneKinds {
		if !slices.Contains(ProtectedKinds, k) {
			add(fmt.Sprintf("spec.sync.pruneKinds[%d]", i), "%q is not one of %s (other kinds are pruned anyway)", k, strings.Join(ProtectedKinds, ", "))
		}
	}
	return ps
}

// gitScheme returns the URL's scheme: "ssh" for scp-like "user@host:path" too, "file" for
// a local path, "" when empty.
func gitScheme(raw string) string {
	switch {
	case raw == "":
		return ""
	case strings.Contains(raw, "://"):
		u, err := url.Parse(raw)
		if err != nil {
			return "invalid"
		}
		return u.Scheme
	case strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "."):
		return "file"
	case strings.Contains(raw, ":"):
		return "ssh"
	}
	return "file"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lineOf finds the line of a dotted field path ("spec.registries[1].host") in a document,
// or of its nearest existing parent (the line of the key).
func lineOf(doc *yaml.Node, field string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, part := range strings.Split(field, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			key = part[:i]
			fmt.Sscanf(part[i:], "[%d]", &idx)
		}
		k, next := mapEntry(n, key)
		if next == nil {
			return line
		}
		n, line = next, k.Line
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n, line = n.Content[idx], n.Content[idx].Line
		}
	}
	return line
}

// mapEntry returns the key and value nodes of key in mapping n.
func mapEntry(n *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}
