package scan

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Format is a webhook body format.
type Format string

// The formats NewWebhook understands.
const (
	// FormatDistribution: the CNCF distribution registry's notification envelope
	// ({"events": [{"action": "push", "target": {"repository", "tag", "url"}, ...}]}).
	// Authenticate with a token in a header the registry's endpoint config sends.
	FormatDistribution Format = "distribution"
	// FormatDockerHub: Docker Hub's {"push_data": {"tag"}, "repository": {"repo_name"}}.
	// Docker Hub cannot sign or add headers: put the token in the URL (?token=).
	FormatDockerHub Format = "dockerhub"
	// FormatHarbor: Harbor's {"type": "PUSH_ARTIFACT", "event_data": {"resources":
	// [{"resource_url"}]}}, with the token as the policy's "Auth Header" (Authorization).
	FormatHarbor Format = "harbor"
	// FormatQuay: Quay's repository push notification {"docker_url", "updated_tags"}; the
	// token goes in the URL (?token=).
	FormatQuay Format = "quay"
	// FormatGitHub: GitHub's "package" / "registry_package" events for containers, signed
	// with X-Hub-Signature-256 (HMACSecret).
	FormatGitHub Format = "github"
	// FormatGeneric: {"image": "registry.example.com/team/app", "tag": "v1"}, signed with
	// X-Signature-256 (or X-Hub-Signature-256) or carrying the token.
	FormatGeneric Format = "generic"
)

// Triggerer is what a webhook moves to the front of the queue; *Scheduler is one.
type Triggerer interface {
	Trigger(repo name.Repository) bool
}

// WebhookOptions configures NewWebhook.
type WebhookOptions struct {
	Format  Format
	Trigger Triggerer
	// Token is a shared secret the sender presents as "Authorization: Bearer TOKEN",
	// "X-Imagebot-Token: TOKEN" or "?token=TOKEN".
	Token string
	// HMACSecret verifies an HMAC-SHA256 of the body in X-Hub-Signature-256 or
	// X-Signature-256 ("sha256=HEX"); for FormatGitHub and FormatGeneric.
	HMACSecret []byte
	// Registry replaces the registry host the body names (a registry known to senders as
	// localhost:5000 and to imagebot as registry.example.com); "" keeps it. Docker Hub and
	// Quay bodies name docker.io and quay.io unless this is set.
	Registry string
	// MaxBody bounds the request body (default 1 MiB).
	MaxBody int64
	Logger  *slog.Logger
	Metrics *Metrics
}

// Webhook is the http.Handler NewWebhook returns.
type Webhook struct{ opts WebhookOptions }

// NewWebhook returns a handler that reads one format's pushes and triggers the named
// repositories. It needs a Token or an HMACSecret (both: both are checked); a request
// without valid credentials gets 401 and is logged without its body. Answers: 202 with
// {"triggered": N, "ignored": M} (repositories nobody watches are ignored), 400 for a body
// it cannot read, 405 for other methods than POST, 413 for a body over MaxBody.
func NewWebhook(opts WebhookOptions) (*Webhook, error) {
	switch opts.Format {
	case FormatDistribution, FormatDockerHub, FormatHarbor, FormatQuay, FormatGitHub, FormatGeneric:
	default:
		return nil, fmt.Errorf("webhook: unknown format %q", opts.Format)
	}
	if opts.Token == "" && len(opts.HMACSecret) == 0 {
		return nil, fmt.Errorf("webhook %s: needs a token or an HMAC secret", opts.Format)
	}
	if len(opts.HMACSecret) > 0 && opts.Format != FormatGitHub && opts.Format != FormatGeneric {
		return nil, fmt.Errorf("webhook %s: the format cannot be signed; use a token", opts.Format)
	}
	if opts.Trigger == nil {
		return nil, errors.New("webhook: no Trigger")
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	return &Webhook{opts: opts}, nil
}

func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format := string(h.opts.Format)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		h.opts.Metrics.webhook(format, "invalid")
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	if why := h.authenticate(r, body); why != "" {
		h.opts.Metrics.webhook(format, "unauthorized")
		if h.opts.Logger != nil {
			h.opts.Logger.Warn("webhook rejected", "format", format, "remote", r.RemoteAddr,
				"reason", why, "bytes", len(body))
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if h.opts.Format == FormatGitHub && r.Header.Get("X-GitHub-Event") == "ping" {
		h.opts.Metrics.webhook(format, "accepted")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	refs, err := parsers[h.opts.Format](body)
	if err != nil {
		h.opts.Metrics.webhook(format, "invalid")
		http.Error(w, fmt.Sprintf("%s webhook: %v", format, err), http.StatusBadRequest)
		return
	}
	triggered, ignored := 0, 0
	seen := map[string]bool{}
	for _, ref := range refs {
		repo, err := h.repository(ref)
		if err != nil {
			h.opts.Metrics.webhook(format, "invalid")
			http.Error(w, fmt.Sprintf("%s webhook: %v", format, err), http.StatusBadRequest)
			return
		}
		if seen[repo.Name()+":"+ref.tag] {
			continue
		}
		seen[repo.Name()+":"+ref.tag] = true
		ok := false
		if tt, can := h.opts.Trigger.(TagTriggerer); can && ref.tag != "" {
			ok = tt.TriggerTag(repo, ref.tag)
		} else {
			ok = h.opts.Trigger.Trigger(repo)
		}
		if ok {
			triggered++
		} else {
			ignored++
		}
	}
	h.opts.Metrics.webhook(format, "accepted")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"triggered":%d,"ignored":%d}`+"\n", triggered, ignored)
}

// authenticate returns why a request is refused, "" when it is not.
func (h *Webhook) authenticate(r *http.Request, body []byte) string {
	if h.opts.Token != "" {
		got := r.Header.Get("X-Imagebot-Token")
		if a := r.Header.Get("Authorization"); got == "" && len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			got = a[7:]
		}
		if got == "" {
			got = r.URL.Query().Get("token")
		}
		if got == "" {
			return "no token"
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(h.opts.Token)) != 1 {
			return "wrong token"
		}
	}
	if len(h.opts.HMACSecret) > 0 {
		sig := r.Header.Get("X-Hub-Signature-256")
		if sig == "" {
			sig = r.Header.Get("X-Signature-256")
		}
		hexSig, ok := strings.CutPrefix(sig, "sha256=")
		if !ok {
			return "no sha256 signature"
		}
		got, err := hex.DecodeString(hexSig)
		if err != nil {
			return "malformed signature"
		}
		mac := hmac.New(sha256.New, h.opts.HMACSecret)
		mac.Write(body)
		if !hmac.Equal(got, mac.Sum(nil)) {
			return "wrong signature"
		}
	}
	return ""
}

// pushed is a repository a body names: host ("" when the format implies it) and path.
// pushed is a repository a webhook names, and the tag pushed when the body says.
type pushed struct{ host, path, tag string }

// TagTriggerer is a Triggerer that can also be told which tag was pushed, so that a scan
// racing the registry (distribution notifies before the tag is listable) is repeated until
// the tag shows. *Scheduler is one.
type TagTriggerer interface {
	TriggerTag(repo name.Repository, tag string) bool
}

func (h *Webhook) repository(p pushed) (name.Repository, error) {
	host := p.host
	if h.opts.Registry != "" {
		host = h.opts.Registry
	}
	s := p.path
	if host != "" {
		s = host + "/" + p.path
	}
	repo, err := name.NewRepository(s, name.Insecure)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %q: %w", truncate(s, 256), err)
	}
	return repo, nil
}

// splitImage splits "host/path[:tag|@digest]" or "path" (no host: Docker Hub).
func splitImage(ref string) pushed {
	ref = strings.TrimPrefix(strings.TrimPrefix(ref, "https://"), "http://")
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	first, rest, ok := strings.Cut(ref, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return pushed{host: first, path: rest}
	}
	return pushed{path: ref}
}
