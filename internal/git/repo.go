package git

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"imagebot.dev/imagebot/internal/update"
)

// Options configures a Repo.
type Options struct {
	URL        string
	Branch     string // default "main"
	PushBranch string // "" pushes to Branch; else a branch rebuilt from Branch for review
	Dir        string // the repository's data dir (mirror and working tree)
	Auth       transport.AuthMethod
	// CABundle holds PEM certificates trusted, besides the system's, for an https:// URL
	// (a private CA); nil trusts the system's only.
	CABundle []byte
	// Markers resolves $imagepolicy marker names when the push history is read back from
	// the branch (see Reverted), so that marker targets' reverts are pins there too.
	Markers map[string]update.MarkerPolicy
	Depth   int // > 0: shallow mirror of that many commits

	Author, Committer Signature // zero: DefaultSignature
	MessageTemplate   string    // Go text/template over MessageData; "" = DefaultMessageTemplate
	CISkip            bool      // append "[ci skip]" to the subject
	SignOff           bool      // append a Signed-off-by trailer for the committer
	SigningKey        *openpgp.Entity
	PushOptions       map[string]string

	MaxAttempts int           // pushes per Update; default 5
	Timeout     time.Duration // per fetch or push; default 60s
	// AfterPush is called after every successful push, with the pushed commit (so sync can
	// apply it at once). It must not block for long.
	AfterPush func(Pushed)
}

// Signature names an author or committer.
type Signature struct{ Name, Email string }

// DefaultSignature is the author and committer when none is configured.
var DefaultSignature = Signature{Name: "imagebot", Email: "imagebot@users.noreply.imagebot.dev"}

// Pushed describes a successful push.
type Pushed struct {
	Commit plumbing.Hash
	Branch string
}

// Repo is one repository's mirror and working tree. Its methods are safe for concurrent
// use; they run one at a time.
type Repo struct {
	opts Options
	tmpl *messageTemplate

	mu     sync.Mutex // held by every operation on the mirror and working tree
	histMu sync.Mutex // guards the push history file and rebuilt
	// rebuilt: the history has had the branch's own record of imagebot's commits added
	// (once per process; see rebuildHistory).
	rebuilt bool
	// history is the push history file's content once read (histMu).
	history     []pushRecord
	historyRead bool
	repo        *gogit.Repository
	// lastFetch and lastHead are the last successful fetch: Update does not fetch again
	// within reuseFetch of it (its push is conditional on the remote head anyway).
	lastFetch time.Time
	lastHead  plumbing.Hash
	// warnings are what went wrong and was repaired, for Warnings.
	warnMu   sync.Mutex
	warnings []string
}

const remoteName = "origin"

// Open opens the mirror in opts.Dir, creating it (and fetching the branch) when missing,
// and re-creating it when it cannot be read.
func Open(ctx context.Context, opts Options) (*Repo, error) {
	if opts.URL == "" || opts.Dir == "" {
		return nil, errors.New("git: URL and Dir are required")
	}
	if opts.Branch == "" {
		opts.Branch = "main"
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Author == (Signature{}) {
		opts.Author = DefaultSignature
	}
	if opts.Committer == (Signature{}) {
		opts.Committer = opts.Author
	}
	tmpl, err := parseMessageTemplate(opts.MessageTemplate)
	if err != nil {
		return nil, err
	}
	r := &Repo{opts: opts, tmpl: tmpl}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("git %s: %w", opts.URL, err)
	}
	if err := r.openMirror(); err != nil {
		r.warn(fmt.Sprintf("mirror %s unreadable (%v): cloning again", r.mirrorDir(), err))
		if err := r.initMirror(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Repo) mirrorDir() string { return filepath.Join(r.opts.Dir, "mirror") }

// Warnings returns, and forgets, what went wrong and was repaired (a re-cloned mirror, a
// working tree checked out afresh). The caller logs them.
func (r *Repo) Warnings() []string {
	r.warnMu.Lock()
	defer r.warnMu.Unlock()
	w := r.warnings
	r.warnings = nil
	return w
}

// warn keeps s for Warnings; it may be called with or without r.mu (Reverted runs both ways).
func (r *Repo) warn(s string) {
	r.warnMu.Lock()
	defer r.warnMu.Unlock()
	r.warnings = append(r.warnings, s)
}

func (r *Repo) openMirror() error {
	repo, err := gogit.PlainOpen(r.mirrorDir())
	if err != nil {
		return err
	}
	rc, err := repo.Remote(remoteName)
	if err != nil {
		return err
	}
	if urls := rc.Config().URLs; len(urls) != 1 || urls[0] != r.opts.URL {
		return fmt.Errorf("its remote is %v, not %s", urls, r.opts.URL)
	}
	// A readable head (when there is one) means the object store is usable.
	if ref, err := repo.Reference(r.trackingRef(), true); err == nil {
		c, err := repo.CommitObject(ref.Hash())
		if err != nil {
			return fmt.Errorf("read head %s: %w", ref.Hash(), err)
		}
		if _, err := c.Tree(); err != nil {
			return fmt.Errorf("read tree of %s: %w", ref.Hash(), err)
		}
	}
	r.repo = repo
	return nil
}

func (r *Repo) initMirror() error {
	if err := os.RemoveAll(r.mirrorDir()); err != nil {
		return fmt.Errorf("git %s: remove unreadable mirror: %w", r.opts.URL, err)
	}
	repo, err := gogit.PlainInit(r.mirrorDir(), true)
	if err != nil {
		return fmt.Errorf("git %s: create mirror: %w", r.opts.URL, err)
	}
	_, err = repo.CreateRemote(&config.RemoteConfig{Name: remoteName, URLs: []string{r.opts.URL},
		Fetch: []config.RefSpec{r.fetchSpec()}})
	if err != nil {
		return fmt.Errorf("git %s: create mirror: %w", r.opts.URL, err)
	}
	r.repo = repo
	return nil
}

func (r *Repo) trackingRef() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(remoteName, r.opts.Branch)
}

func (r *Repo) fetchSpec() config.RefSpec {
	return config.RefSpec(fmt.Sprintf("+%s:%s", plumbing.NewBranchReferenceName(r.opts.Branch), r.trackingRef()))
}

// Fetch brings the mirror up to date with the remote branch and returns its head. A branch
// missing on the remote is ErrBranchNotFound.
func (r *Repo) Fetch(ctx context.Context) (plumbing.Hash, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetch(ctx)
}

// fetchAttempts bounds the tries of a fetch that fails for a transient reason (a dropped
// connection); authentication, host key and missing-branch errors are not retried.
const fetchAttempts = 3

func (r *Repo) fetch(ctx context.Context) (plumbing.Hash, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	proxy, release := bindConnections(ctx, r.opts.URL)
	defer release()
	var err error
	for attempt := 1; attempt <= fetchAttempts; attempt++ {
		err = ctxErr(ctx, r.repo.FetchContext(ctx, &gogit.FetchOptions{
			RemoteName: remoteName, RefSpecs: []config.RefSpec{r.fetchSpec()},
			Auth: r.opts.Auth, CABundle: r.opts.CABundle, Depth: r.opts.Depth, Force: true, Tags: gogit.NoTags, ProxyOptions: proxy,
		}))
		if err == nil || errors.Is(err, gogit.NoErrAlreadyUpToDate) || isMissingRef(err) || !transient(err) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
	switch {
	case err == nil, errors.Is(err, gogit.NoErrAlreadyUpToDate):
	case isMissingRef(err):
		return plumbing.ZeroHash, fmt.Errorf("git fetch %s: %w: %s", r.opts.URL, ErrBranchNotFound, r.opts.Branch)
	default:
		return plumbing.ZeroHash, fmt.Errorf("git fetch %s %s: %w", r.opts.URL, r.opts.Branch, explainAuth(err, r.opts.Auth))
	}
	ref, err := r.repo.Reference(r.trackingRef(), true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("git fetch %s: resolve %s: %w", r.opts.URL, r.trackingRef(), err)
	}
	r.lastFetch, r.lastHead = time.Now(), ref.Hash()
	return ref.Hash(), nil
}

// reuseFetch is how long a fetch counts as current for Update's first attempt.
const reuseFetch = 2 * time.Second

// recentHead returns the head of a fetch made within reuseFetch, else fetches.
func (r *Repo) recentHead(ctx context.Context) (plumbing.Hash, error) {
	if !r.lastHead.IsZero() && time.Since(r.lastFetch) < reuseFetch {
		return r.lastHead, nil
	}
	return r.fetch(ctx)
}

// transient says whether a fetch error is worth retrying at once.
func transient(err error) bool {
	if errors.Is(err, ErrHostKey) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) ||
		errors.Is(err, transport.ErrRepositoryNotFound) {
		return false
	}
	// An untrusted or mismatched TLS certificate will not be trusted a moment later either.
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) {
		return false
	}
	msg := err.Error()
	return !strings.Contains(msg, "unable to authenticate") && !strings.Contains(msg, "host key")
}

func isMissingRef(err error) bool {
	var nm gogit.NoMatchingRefSpecError
	return errors.As(err, &nm) || errors.Is(err, transport.ErrEmptyRemoteRepository)
}
