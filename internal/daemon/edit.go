package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/bot"
	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/update"
)

// The editing API: what fluxctl's release, automate, deautomate, lock, unlock and policy did
// through Flux v1's daemon. Each edit is made by the repository's bot, one at a time with its
// loop, committed and pushed (racing writers handled as for automated updates), and then
// applied by the loop. Both endpoints need the API token (--api-token-file), not the webhook
// token, which registries hold; without an API token they are off.

// ReleaseRequest is the body of POST /api/v1/release.
type ReleaseRequest struct {
	Repository string `json:"repository,omitempty"` // "" when the daemon has one repository
	Workload   string `json:"workload"`             // Kind/namespace/name, namespace/name or name
	Container  string `json:"container,omitempty"`  // "": every container
	Image      string `json:"image,omitempty"`      // the image to run; or AllImages
	AllImages  bool   `json:"allImages,omitempty"`  // each container to what its policy picks
	DryRun     bool   `json:"dryRun,omitempty"`     // answer with the diff, commit nothing
	Force      bool   `json:"force,omitempty"`      // release onto a locked workload
	User       string `json:"user,omitempty"`       // who asks, for the commit message
}

// AnnotateRequest is the body of POST /api/v1/annotate. Absent fields change nothing.
type AnnotateRequest struct {
	Repository string            `json:"repository,omitempty"`
	Workload   string            `json:"workload"`
	Automated  *bool             `json:"automated,omitempty"`
	Locked     *bool             `json:"locked,omitempty"`
	Message    string            `json:"message,omitempty"` // why it is locked (locked_msg)
	User       string            `json:"user,omitempty"`    // who asks: the commit message, and locked_user
	Tags       map[string]string `json:"tags,omitempty"`    // container → policy ("" removes it)
}

// EditResponse answers an edit. Commit is "" when nothing was committed: a dry run, or
// nothing to change (then Changes is empty).
type EditResponse struct {
	Repository string   `json:"repository"`
	Commit     string   `json:"commit,omitempty"`
	Message    string   `json:"message,omitempty"` // the commit's
	Changes    []string `json:"changes"`           // one line each
	DryRun     bool     `json:"dryRun,omitempty"`
	Diff       string   `json:"diff,omitempty"` // of a dry run
}

// ErrorResponse is the body of an editing endpoint's error.
type ErrorResponse struct {
	Error string `json:"error"`
}

var (
	errBadRequest   = errors.New("bad request")
	errNoRepository = errors.New("no such repository")
	errStandby      = errors.New("standby replica: another replica leads and makes the edits")
)

// editTimeout bounds an edit (fetch, edit, push with retries); it runs to the end even if
// the client goes away, so that a push is never cut short by a closed connection.
const editTimeout = 2 * time.Minute

// needAPIToken serves h only to requests that carry the API token. The webhook token, which
// registries hold, does not open it: the edit API commits to git.
func (d *Daemon) needAPIToken(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d.opts.APIToken == "" {
			writeJSON(w, http.StatusForbidden, ErrorResponse{Error: "the edit API is off: start imagebot run with --api-token-file"})
			return
		}
		if !tokenOK(r, d.opts.APIToken) {
			writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: "unauthorized: present the API token (Authorization: Bearer TOKEN)"})
			return
		}
		h(w, r)
	}
}

// release (POST /api/v1/release) releases a workload's images.
func (d *Daemon) release(w http.ResponseWriter, r *http.Request) {
	serveEdit(d, w, r, func(ctx context.Context, b *bot.Bot, req ReleaseRequest) (EditResponse, error) {
		rel, err := req.release()
		if err != nil {
			return EditResponse{}, err
		}
		res, diff, err := b.Release(ctx, rel, req.User, req.DryRun)
		if err != nil {
			return EditResponse{}, err
		}
		out := response(res)
		out.DryRun, out.Diff = req.DryRun, diff
		return out, nil
	})
}

func (req ReleaseRequest) release() (bot.Release, error) {
	wl, err := bot.ParseWorkload(req.Workload)
	if err != nil {
		return bot.Release{}, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	rel := bot.Release{Workload: wl, Container: req.Container, Force: req.Force}
	if (req.Image == "") == !req.AllImages {
		return rel, fmt.Errorf("%w: give exactly one of image and allImages", errBadRequest)
	}
	if req.Image != "" {
		if rel.Image, err = name.ParseReference(req.Image); err != nil {
			return rel, fmt.Errorf("%w: image %q: %w", errBadRequest, req.Image, err)
		}
	}
	return rel, checkText("user", req.User)
}

// annotate (POST /api/v1/annotate) sets or removes a workload's automation annotations.
func (d *Daemon) annotate(w http.ResponseWriter, r *http.Request) {
	serveEdit(d, w, r, func(ctx context.Context, b *bot.Bot, req AnnotateRequest) (EditResponse, error) {
		edit, err := req.edit()
		if err != nil {
			return EditResponse{}, err
		}
		res, err := b.Annotate(ctx, edit, req.User)
		return response(res), err
	})
}

// editRequest is what every edit request names: the repository.
type editRequest interface{ repository() string }

func (req ReleaseRequest) repository() string  { return req.Repository }
func (req AnnotateRequest) repository() string { return req.Repository }

// serveEdit decodes an edit request, finds its repository's bot and runs the edit on it
// (to the end even if the client goes away, within editTimeout), answering its result or
// error.
func serveEdit[R editRequest](d *Daemon, w http.ResponseWriter, r *http.Request, run func(context.Context, *bot.Bot, R) (EditResponse, error)) {
	var req R
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	b, repo, err := d.editBot(req.repository())
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), editTimeout)
	defer cancel()
	out, err := run(ctx, b, req)
	if err != nil {
		if !errors.Is(err, errBadRequest) {
			err = fmt.Errorf("repository %s: %w", repo, err)
		}
		writeError(w, err)
		return
	}
	out.Repository = repo
	writeJSON(w, http.StatusOK, out)
}

func (req AnnotateRequest) edit() (update.AnnotationEdit, error) {
	wl, err := bot.ParseWorkload(req.Workload)
	if err != nil {
		return update.AnnotationEdit{}, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	e := update.AnnotationEdit{Workload: wl, Automated: req.Automated, Locked: req.Locked, Tags: req.Tags}
	if e.Automated == nil && e.Locked == nil && len(e.Tags) == 0 {
		return e, fmt.Errorf("%w: nothing to edit: give automated, locked or tags", errBadRequest)
	}
	if req.Message != "" && (e.Locked == nil || !*e.Locked) {
		return e, fmt.Errorf("%w: message goes with locked: true", errBadRequest)
	}
	if e.Locked != nil && *e.Locked {
		e.LockedMsg, e.LockedUser = req.Message, req.User
	}
	return e, errors.Join(checkText("user", req.User), checkText("message", req.Message))
}

// checkText refuses control characters (line breaks) in what goes into an annotation and a
// commit message's subject.
func checkText(field, s string) error {
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: %s: control characters are not allowed", errBadRequest, field)
	}
	return nil
}

// editBot returns the bot of the named repository, or of the only one when name is "".
func (d *Daemon) editBot(repo string) (*bot.Bot, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.standby {
		return nil, "", errStandby
	}
	if repo == "" {
		if len(d.bots) == 1 {
			for n, rb := range d.bots {
				return rb.bot, n, nil
			}
		}
		names := make([]string, 0, len(d.bots))
		for n := range d.bots {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, "", fmt.Errorf("%w: name the repository: the daemon has %d (%s)", errBadRequest, len(names), strings.Join(names, ", "))
	}
	rb, ok := d.bots[repo]
	if !ok {
		return nil, "", fmt.Errorf("%w: %q", errNoRepository, repo)
	}
	return rb.bot, repo, nil
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %w", errBadRequest, err)
	}
	return nil
}

// response is an edit's result as the API answers it (serveEdit adds the repository).
func response(res *git.Result) EditResponse {
	out := EditResponse{Changes: []string{}}
	if res == nil {
		return out
	}
	if !res.Commit.IsZero() {
		out.Commit, out.Message = res.Commit.String(), res.Message
	}
	if res.Changes != nil {
		for _, c := range res.Changes.Changes {
			out.Changes = append(out.Changes, c.String())
		}
	}
	return out
}

// statusOf maps an edit's error to its HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, errBadRequest), errors.Is(err, update.ErrInvalidPolicy), errors.Is(err, update.ErrCannotExpress):
		return http.StatusBadRequest
	case errors.Is(err, bot.ErrPush):
		return http.StatusBadGateway
	case errors.Is(err, errNoRepository), errors.Is(err, update.ErrWorkloadNotFound),
		errors.Is(err, bot.ErrNoContainer), errors.Is(err, update.ErrUnknownContainer):
		return http.StatusNotFound
	case errors.Is(err, bot.ErrLocked), errors.Is(err, update.ErrAmbiguous):
		return http.StatusConflict
	case errors.Is(err, bot.ErrNotScanned), errors.Is(err, errStandby), errors.Is(err, bot.ErrStopped):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(err), ErrorResponse{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
