package scan

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
)

// parsers read each format's body into the repositories it names.
var parsers = map[Format]func([]byte) ([]pushed, error){
	FormatDistribution: parseDistribution,
	FormatDockerHub:    parseDockerHub,
	FormatHarbor:       parseHarbor,
	FormatQuay:         parseQuay,
	FormatGitHub:       parseGitHub,
	FormatGeneric:      parseGeneric,
}

var errNoRepository = errors.New("body names no repository")

// parseDistribution reads the distribution notification envelope; only pushes of tagged
// manifests trigger (blob pushes and pulls are noise).
func parseDistribution(body []byte) ([]pushed, error) {
	var env struct {
		Events []struct {
			Action string `json:"action"`
			Target struct {
				Repository string `json:"repository"`
				Tag        string `json:"tag"`
				URL        string `json:"url"`
			} `json:"target"`
			Request struct {
				Host string `json:"host"`
			} `json:"request"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, errors.New("not a notification envelope")
	}
	var out []pushed
	for _, e := range env.Events {
		if e.Action != "push" || e.Target.Tag == "" || e.Target.Repository == "" {
			continue
		}
		host := e.Request.Host
		if u, err := url.Parse(e.Target.URL); err == nil && u.Host != "" {
			host = u.Host
		}
		out = append(out, pushed{host: host, path: e.Target.Repository, tag: e.Target.Tag})
	}
	return out, nil // an envelope of pulls triggers nothing
}

func parseDockerHub(body []byte) ([]pushed, error) {
	var b struct {
		Repository struct {
			RepoName string `json:"repo_name"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, errors.New("not a Docker Hub push")
	}
	if b.Repository.RepoName == "" {
		return nil, errNoRepository
	}
	return []pushed{{host: "index.docker.io", path: b.Repository.RepoName}}, nil
}

func parseHarbor(body []byte) ([]pushed, error) {
	var b struct {
		Type      string `json:"type"`
		EventData struct {
			Resources []struct {
				ResourceURL string `json:"resource_url"`
			} `json:"resources"`
		} `json:"event_data"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, errors.New("not a Harbor event")
	}
	if b.Type != "PUSH_ARTIFACT" && b.Type != "pushImage" {
		return nil, nil
	}
	var out []pushed
	for _, r := range b.EventData.Resources {
		if r.ResourceURL != "" {
			out = append(out, splitImage(r.ResourceURL))
		}
	}
	if len(out) == 0 {
		return nil, errNoRepository
	}
	return out, nil
}

func parseQuay(body []byte) ([]pushed, error) {
	var b struct {
		DockerURL  string `json:"docker_url"`
		Repository string `json:"repository"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, errors.New("not a Quay notification")
	}
	switch {
	case b.DockerURL != "":
		return []pushed{splitImage(b.DockerURL)}, nil
	case b.Repository != "":
		return []pushed{{host: "quay.io", path: b.Repository}}, nil
	}
	return nil, errNoRepository
}

// parseGitHub reads "package" and "registry_package" events of container packages.
func parseGitHub(body []byte) ([]pushed, error) {
	type version struct {
		PackageURL string `json:"package_url"`
	}
	var b struct {
		Action string `json:"action"`
		Pkg    *struct {
			Name           string  `json:"name"`
			Namespace      string  `json:"namespace"`
			PackageType    string  `json:"package_type"`
			PackageVersion version `json:"package_version"`
			Owner          struct {
				Login string `json:"login"`
			} `json:"owner"`
		} `json:"package"`
		RegistryPkg *struct {
			Name           string  `json:"name"`
			Namespace      string  `json:"namespace"`
			PackageType    string  `json:"package_type"`
			PackageVersion version `json:"package_version"`
			Owner          struct {
				Login string `json:"login"`
			} `json:"owner"`
		} `json:"registry_package"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, errors.New("not a GitHub package event")
	}
	p := b.Pkg
	if p == nil {
		p = b.RegistryPkg
	}
	if p == nil {
		return nil, errNoRepository
	}
	if !strings.EqualFold(p.PackageType, "container") && !strings.EqualFold(p.PackageType, "CONTAINER") {
		return nil, nil // npm, maven...: not ours
	}
	if b.Action != "" && b.Action != "published" && b.Action != "updated" {
		return nil, nil
	}
	if u := p.PackageVersion.PackageURL; u != "" {
		return []pushed{splitImage(u)}, nil
	}
	ns := p.Namespace
	if ns == "" {
		ns = p.Owner.Login
	}
	if ns == "" || p.Name == "" {
		return nil, errNoRepository
	}
	return []pushed{{host: "ghcr.io", path: strings.ToLower(ns + "/" + p.Name)}}, nil
}

func parseGeneric(body []byte) ([]pushed, error) {
	var b struct {
		Image string `json:"image"`
		Tag   string `json:"tag"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, errors.New(`not {"image": "...", "tag": "..."}`)
	}
	if b.Image == "" {
		return nil, errNoRepository
	}
	p := splitImage(b.Image)
	p.tag = b.Tag
	return []pushed{p}, nil
}
