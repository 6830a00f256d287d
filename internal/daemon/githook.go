package daemon

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Git push webhooks wake the bot of the pushed repository and branch at once, instead of at
// its next git poll: a human commit (a revert, a policy change) is applied within seconds.
//
//	POST /hooks/git/github   X-Hub-Signature-256: sha256=HMAC-SHA256(body)   (secret: --webhook-hmac-file)
//	POST /hooks/git/gitea    X-Gitea-Signature: HMAC-SHA256(body), hex        (secret: --webhook-hmac-file)
//	POST /hooks/git/gitlab   X-Gitlab-Token: TOKEN                            (token: --webhook-token-file)

const maxHookBody = 5 << 20 // GitHub's limit is 25 MB, but a push body this large is not one we need

// gitPush is what a push payload says: the branch ref and the repository's URLs.
type gitPush struct {
	Ref        string `json:"ref"`
	Repository struct {
		CloneURL string `json:"clone_url"`
		SSHURL   string `json:"ssh_url"`
		HTMLURL  string `json:"html_url"`
	} `json:"repository"`
	Project struct { // GitLab
		SSH  string `json:"git_ssh_url"`
		HTTP string `json:"git_http_url"`
		Web  string `json:"web_url"`
	} `json:"project"`
}

func (p gitPush) urls() []string {
	return []string{p.Repository.CloneURL, p.Repository.SSHURL, p.Repository.HTMLURL, p.Project.SSH, p.Project.HTTP, p.Project.Web}
}

func (d *Daemon) gitHook(format string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHookBody))
		if err != nil {
			http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		if !d.gitHookAuthentic(format, r, body) {
			d.log.Warn("git webhook rejected", "format", format, "remote", r.RemoteAddr, "bytes", len(body))
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		event := r.Header.Get(map[string]string{"github": "X-GitHub-Event", "gitea": "X-Gitea-Event", "gitlab": "X-Gitlab-Event"}[format])
		if event != "push" && event != "Push Hook" {
			w.WriteHeader(http.StatusNoContent) // pings and other events
			return
		}
		var p gitPush
		if err := json.Unmarshal(body, &p); err != nil || p.Ref == "" {
			http.Error(w, format+" webhook: not a push payload", http.StatusBadRequest)
			return
		}
		woken := d.wakeRepositories(p)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"woken":%d}`+"\n", woken)
	}
}

func (d *Daemon) gitHookAuthentic(format string, r *http.Request, body []byte) bool {
	switch format {
	case "gitlab":
		got := r.Header.Get("X-Gitlab-Token")
		return d.opts.WebhookToken != "" && subtle.ConstantTimeCompare([]byte(got), []byte(d.opts.WebhookToken)) == 1
	case "github", "gitea":
		if len(d.opts.WebhookHMACSecret) == 0 {
			return false
		}
		got := r.Header.Get("X-Hub-Signature-256")
		if format == "gitea" {
			got = r.Header.Get("X-Gitea-Signature")
		}
		got = strings.TrimPrefix(got, "sha256=")
		mac := hmac.New(sha256.New, d.opts.WebhookHMACSecret)
		mac.Write(body)
		want := hex.EncodeToString(mac.Sum(nil))
		return hmac.Equal([]byte(got), []byte(want))
	}
	return false
}

// wakeRepositories wakes the bots whose repository and branch the push names.
func (d *Daemon) wakeRepositories(p gitPush) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, r := range d.bots {
		g := r.cfg.Spec.Git
		if p.Ref != "refs/heads/"+g.Branch {
			continue
		}
		want := canonicalGitURL(g.URL)
		for _, u := range p.urls() {
			if u != "" && canonicalGitURL(u) == want {
				r.bot.Wake()
				n++
				break
			}
		}
	}
	return n
}

// canonicalGitURL reduces the spellings of one repository to "host/path": the scheme, the
// user, a port, a trailing ".git" or "/" and the case are dropped; scp-like "git@host:path"
// is read as ssh.
func canonicalGitURL(u string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	} else if at := strings.Index(u, "@"); at >= 0 {
		u = strings.Replace(u[at+1:], ":", "/", 1) // git@host:org/repo
	}
	if at := strings.Index(u, "@"); at >= 0 && at < strings.Index(u+"/", "/") {
		u = u[at+1:]
	}
	host, path, _ := strings.Cut(u, "/")
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	path = strings.TrimSuffix(strings.TrimSuffix(path, "/"), ".git")
	return host + "/" + path
}
