package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"

	"imagebot.dev/imagebot/internal/update"
)

// EditFunc edits the working tree in dir (a checkout of the remote head) and returns what it
// changed. Update may call it more than once, each time on a fresh checkout of a newer head.
type EditFunc func(ctx context.Context, dir string) (*update.ChangeSet, error)

// Result is what Update did.
type Result struct {
	Base   plumbing.Hash // the remote head the last attempt started from
	Commit plumbing.Hash // the pushed commit; zero when nothing was committed or pushed
	// Head is the commit the working tree holds afterwards: Commit when it went to Branch,
	// else Base (a separate PushBranch is not what the tree follows).
	Head    plumbing.Hash
	Changes *update.ChangeSet // the last attempt's changes (empty when nothing changed)
	// Attempts counts the edits made (1 unless a push lost a race).
	Attempts int
	// Message is the pushed commit's message.
	Message string
}

// Update fetches, brings the working tree to the remote head, runs edit, commits what it
// changed and pushes. See the package documentation for races and retries.
func (r *Repo) Update(ctx context.Context, edit EditFunc, opts ...UpdateOption) (*Result, error) {
	var uo updateOptions
	for _, o := range opts {
		o(&uo)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{}
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		res.Attempts = attempt
		fetch := r.fetch
		if attempt == 1 && r.pushBranch() == r.opts.Branch {
			// A fetch made just before (Checkout) is not repeated: the push only lands if
			// the branch is still at that head. (A separate push branch is forced, so it
			// always starts from a fresh fetch.)
			fetch = r.recentHead
		}
		head, err := fetch(ctx)
		if err != nil {
			return res, err
		}
		res.Base, res.Head = head, head
		if err := r.moveWorkTree(ctx, head); err != nil {
			return res, err
		}
		commit, objects, cs, err := r.editAndCommit(ctx, head, edit, uo)
		res.Changes = cs
		if err != nil || commit.IsZero() {
			return res, err
		}
		// A push that starts is let finish even if ctx ends meanwhile (a shutdown, a config
		// reload): a commit made and not pushed would be work thrown away, and a push cut
		// short leaves the caller unsure what the remote has.
		pctx, done := finishing(ctx, pushGrace)
		err = r.push(pctx, head, commit, objects)
		done()
		if errors.Is(err, errSamePushBranch) {
			// The review branch already holds exactly this: no new commit to show for it.
			return res, r.resetEdits(head, cs)
		}
		if err == nil {
			return res, r.pushed(res, head, commit, cs)
		}
		// Put the working tree back as head has it, then find out whether another writer
		// moved the branch (a race: edit again on the new head) or the push failed outright.
		if rerr := r.resetEdits(head, cs); rerr != nil {
			return res, errors.Join(err, rerr)
		}
		if !errors.Is(err, errRaced) {
			newHead, ferr := r.fetch(ctx)
			if ferr == nil && newHead == commit && r.pushBranch() == r.opts.Branch {
				// The push landed though the server did not confirm it (the connection
				// dropped after the branch moved): it is done.
				if err := r.moveWorkTree(ctx, commit); err != nil {
					return res, err
				}
				return res, r.pushed(res, head, commit, cs)
			}
			if ferr != nil || newHead == head {
				return res, fmt.Errorf("git push %s %s: %w", r.opts.URL, r.pushBranch(), err)
			}
		}
		if attempt >= r.opts.MaxAttempts {
			return res, fmt.Errorf("git push %s %s: %w (%d attempts; last: %v)", r.opts.URL, r.pushBranch(), ErrPushRace, attempt, err)
		}
		jittered := backoff/2 + rand.N(backoff)
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(jittered):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// editAndCommit runs edit on the working tree (at head) and commits its changes.
func (r *Repo) editAndCommit(ctx context.Context, head plumbing.Hash, edit EditFunc, uo updateOptions) (plumbing.Hash, []plumbing.Hash, *update.ChangeSet, error) {
	if err := r.writeState(workState{Commit: head.String(), Editing: true}); err != nil {
		return plumbing.ZeroHash, nil, nil, err
	}
	// On an error the working tree stays marked as being edited: what the edit touched is
	// not known, so the next run checks it out afresh.
	cs, err := edit(ctx, r.WorkDir())
	if cs == nil {
		cs = &update.ChangeSet{}
	}
	if err != nil {
		return plumbing.ZeroHash, nil, cs, err
	}
	if cs.Empty() {
		return plumbing.ZeroHash, nil, cs, r.writeState(workState{Commit: head.String()})
	}
	msg, err := r.message(cs, uo)
	if err != nil {
		return plumbing.ZeroHash, nil, cs, err
	}
	commit, objects, err := r.commitFiles(head, changedPaths(cs.Files()), msg)
	if err != nil {
		return plumbing.ZeroHash, nil, cs, fmt.Errorf("git commit: %w", err)
	}
	if commit.IsZero() { // edits that restored what head has: nothing to commit
		return plumbing.ZeroHash, nil, &update.ChangeSet{}, r.resetEdits(head, cs)
	}
	return commit, objects, cs, nil
}

// resetEdits restores the files cs touched as head has them and records a clean tree.
func (r *Repo) resetEdits(head plumbing.Hash, cs *update.ChangeSet) error {
	tree, err := r.tree(head)
	if err != nil {
		return err
	}
	if err := r.restoreFiles(tree, changedPaths(cs.Files())); err != nil {
		return fmt.Errorf("restore the working tree: %w", err)
	}
	return r.writeState(workState{Commit: head.String()})
}

// pushed completes res for a push of commit (head plus cs) that landed, and runs AfterPush.
func (r *Repo) pushed(res *Result, head, commit plumbing.Hash, cs *update.ChangeSet) error {
	res.Commit = commit
	if c, err := r.repo.CommitObject(commit); err == nil {
		res.Message = c.Message
	}
	if err := r.markPushed(head, commit, cs); err != nil {
		return err
	}
	if r.pushBranch() == r.opts.Branch {
		res.Head = commit
	}
	if r.opts.AfterPush != nil {
		r.opts.AfterPush(Pushed{Commit: commit, Branch: r.pushBranch()})
	}
	return nil
}

// markPushed records what the working tree holds after a push of commit (head plus cs):
// commit itself when it went to Branch; head again when it went to a separate PushBranch,
// since the working tree follows Branch.
func (r *Repo) markPushed(head, commit plumbing.Hash, cs *update.ChangeSet) error {
	if r.pushBranch() != r.opts.Branch {
		return r.resetEdits(head, cs)
	}
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(r.trackingRef(), commit)); err != nil {
		return err
	}
	r.lastFetch, r.lastHead = time.Time{}, plumbing.ZeroHash
	if err := r.writeState(workState{Commit: commit.String()}); err != nil {
		return err
	}
	return r.recordPushed(commit.String(), cs)
}

func (r *Repo) pushBranch() string {
	if r.opts.PushBranch != "" {
		return r.opts.PushBranch
	}
	return r.opts.Branch
}

// pushGrace is how long a push may go on after the caller's context ended: enough to
// finish one, never enough to hang a shutdown on a dead server.
const pushGrace = 10 * time.Second

// finishing returns a context that ends grace after ctx does (or when done is called).
func finishing(ctx context.Context, grace time.Duration) (context.Context, func()) {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return fctx, func() {
		stop()
		cancel()
	}
}

// errRaced: the remote branch is no longer at the commit the edit started from.
var errRaced = errors.New("the remote branch moved (another writer pushed first)")

// errUnconfirmed: the push was sent and the server never said whether it took it.
var errUnconfirmed = errors.New("the connection to the server ended before it confirmed the push (it may or may not have landed; the next update checks)")

// errSamePushBranch: the separate push branch already holds the tree of the commit to push
// (the same updates, pushed by an earlier cycle and not merged yet).
var errSamePushBranch = errors.New("the push branch already holds these changes")

// push sends commit to the push branch with exactly the objects built for it (the remote has
// the rest: they are reachable from base), so a push costs the same in a small or a huge
// repository. Branch is updated only if it is still at base (a fast-forward, never a force);
// a separate PushBranch, imagebot's own, is overwritten.
func (r *Repo) push(ctx context.Context, base, commit plumbing.Hash, objects []plumbing.Hash) (err error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	defer func() { err = ctxErr(ctx, err) }()
	ep, err := transport.NewEndpoint(r.opts.URL)
	if err != nil {
		return err
	}
	ep.CaBundle = r.opts.CABundle
	var release func()
	ep.Proxy, release = bindConnections(ctx, r.opts.URL)
	defer release()
	cl, err := client.NewClient(ep)
	if err != nil {
		return err
	}
	sess, err := cl.NewReceivePackSession(ep, r.opts.Auth)
	if err != nil {
		return explainAuth(err, r.opts.Auth)
	}
	defer func() { err = errors.Join(err, sess.Close()) }()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return explainAuth(err, r.opts.Auth)
	}
	refs, err := ar.AllReferences()
	if err != nil {
		return err
	}
	target := plumbing.NewBranchReferenceName(r.pushBranch())
	old := plumbing.ZeroHash
	if ref, err := refs.Reference(target); err == nil {
		old = ref.Hash()
	}
	if r.pushBranch() == r.opts.Branch && old != base {
		return errRaced
	}
	if r.pushBranch() != r.opts.Branch && !old.IsZero() && r.sameTree(old, commit) {
		return errSamePushBranch
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(ar.Capabilities)
	if len(r.opts.PushOptions) > 0 {
		if !ar.Capabilities.Supports(capability.PushOptions) {
			return fmt.Errorf("the server does not accept push options")
		}
		_ = req.Capabilities.Set(capability.PushOptions)
		// In a stable order (by key): a server hook sees the same options the same way on
		// every push.
		for _, k := range slices.Sorted(maps.Keys(r.opts.PushOptions)) {
			req.Options = append(req.Options, &packp.Option{Key: k, Value: r.opts.PushOptions[k]})
		}
	}
	req.Commands = []*packp.Command{{Name: target, Old: old, New: commit}}
	var pack bytes.Buffer
	enc := packfile.NewEncoder(&pack, r.repo.Storer, !ar.Capabilities.Supports(capability.OFSDelta))
	if _, err := enc.Encode(objects, 10); err != nil {
		return fmt.Errorf("pack %d objects: %w", len(objects), err)
	}
	req.Packfile = io.NopCloser(&pack)
	// What the server says on the side (a hook's refusal, GitHub's protected-branch
	// message) goes into the error: "pre-receive hook declined" alone does not say why.
	var remote remoteMessages
	if ar.Capabilities.Supports(capability.Sideband64k) {
		_ = req.Capabilities.Set(capability.Sideband64k)
		req.Progress = &remote
	}
	status, err := sess.ReceivePack(ctx, req)
	if err != nil {
		if ctx.Err() == nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			// The pack was sent and the connection ended before the server's report: the
			// branch may or may not have moved. The fetch after a failed push, or the next
			// Update, finds out (and does not push the same change twice).
			return fmt.Errorf("%w: %w", errUnconfirmed, err)
		}
		return remote.annotate(explainAuth(err, r.opts.Auth))
	}
	if status != nil {
		if err := status.Error(); err != nil {
			return remote.annotate(err)
		}
	}
	return nil
}

// remoteMessages keeps the last of what a server sent on the progress side band.
type remoteMessages struct{ b []byte }

const maxRemoteMessages = 2048

func (m *remoteMessages) Write(p []byte) (int, error) {
	m.b = append(m.b, p...)
	if len(m.b) > maxRemoteMessages {
		m.b = m.b[len(m.b)-maxRemoteMessages:]
	}
	return len(p), nil
}

// annotate adds the server's messages to err, one line each, as "remote: …".
func (m *remoteMessages) annotate(err error) error {
	var lines []string
	for _, l := range strings.FieldsFunc(string(m.b), func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, "remote: "+l)
		}
	}
	if len(lines) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(lines, "; "))
}

// sameTree says whether commits a and b have the same tree (false when a is not in the
// mirror).
func (r *Repo) sameTree(a, b plumbing.Hash) bool {
	ca, err := r.repo.CommitObject(a)
	if err != nil {
		return false
	}
	cb, err := r.repo.CommitObject(b)
	return err == nil && ca.TreeHash == cb.TreeHash
}
