package git

import (
	"fmt"
	"sort"
	"strings"
	"text/template"

	"imagebot.dev/imagebot/internal/update"
)

// MessageData is what a commit message template sees.
type MessageData struct {
	Changes   []update.Change // in file, then line order
	Files     []string        // distinct, sorted
	Workloads []string        // distinct "namespace/name" (or file for markers), sorted
}

// DefaultMessageTemplate gives one subject line naming the change, or the count when there
// are many, and a body listing every change with its policy.
const DefaultMessageTemplate = `
{{- if eq (len .Changes) 1 }}{{ with index .Changes 0 }}
{{- if .Annotation }}Set {{ .Annotation }} on {{ workload . }}
{{- else }}Update {{ workload . }} {{ .Container }} to {{ tag .New }}{{ end }}{{ end }}
{{- else }}Update {{ len .Changes }} images in {{ len .Workloads }} {{ if eq (len .Workloads) 1 }}workload{{ else }}workloads{{ end }}{{ end }}

{{ range .Changes }}- {{ .File }}:{{ .Line }} {{ workload . }}
{{- if .Annotation }} {{ .Annotation }}: {{ printf "%q" .Old }} -> {{ printf "%q" .New }}
{{- else }} {{ .Container }}: {{ .Old }} -> {{ .New }}{{ with .Policy }} ({{ . }}){{ end }}{{ end }}
{{ end }}`

type messageTemplate struct{ t *template.Template }

var messageFuncs = template.FuncMap{
	// tag returns what follows the repository in a reference: the tag, the digest, or both.
	"tag": func(ref string) string {
		_, digest, pinned := strings.Cut(ref, "@")
		switch t := update.TagOf(ref); {
		case t != "" && pinned:
			return t + "@" + digest
		case t != "":
			return t
		}
		return digest
	},
	"workload": func(c update.Change) string { return workloadName(c) },
}

func workloadName(c update.Change) string {
	switch {
	case c.Workload.Name == "":
		return c.File
	case c.Workload.Namespace == "":
		return c.Workload.Name
	default:
		return c.Workload.Namespace + "/" + c.Workload.Name
	}
}

// CheckMessageTemplate reports whether text is a usable commit message template.
func CheckMessageTemplate(text string) error {
	_, err := parseMessageTemplate(text)
	return err
}

func parseMessageTemplate(text string) (*messageTemplate, error) {
	if text == "" {
		text = DefaultMessageTemplate
	}
	t, err := template.New("commit message").Funcs(messageFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse commit message template: %w", err)
	}
	return &messageTemplate{t: t}, nil
}

// render executes the template over cs and applies the [ci skip] and sign-off options.
func (m *messageTemplate) render(cs *update.ChangeSet, opts Options) (string, error) {
	data := MessageData{Changes: cs.Changes}
	files, workloads := map[string]bool{}, map[string]bool{}
	for _, c := range cs.Changes {
		files[c.File] = true
		workloads[workloadName(c)] = true
	}
	data.Files, data.Workloads = sortedKeys(files), sortedKeys(workloads)
	var b strings.Builder
	if err := m.t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render commit message: %w", err)
	}
	return finishMessage(b.String(), opts)
}

// finishMessage trims msg and applies the [ci skip] and sign-off options.
func finishMessage(msg string, opts Options) (string, error) {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return "", fmt.Errorf("render commit message: the message is empty")
	}
	if opts.CISkip {
		subject, rest, _ := strings.Cut(msg, "\n")
		msg = subject + " [ci skip]"
		if rest != "" {
			msg += "\n" + rest
		}
	}
	if opts.SignOff {
		msg += fmt.Sprintf("\n\nSigned-off-by: %s <%s>", opts.Committer.Name, opts.Committer.Email)
	}
	return msg + "\n", nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
