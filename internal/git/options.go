package git

import "imagebot.dev/imagebot/internal/update"

// UpdateOption changes how one Update commits.
type UpdateOption func(*updateOptions)

type updateOptions struct {
	message func(*update.ChangeSet) string
}

// WithMessage has fn write the commit message from the edit's changes (on every attempt:
// a retried edit may change other things) instead of the repository's message template.
// The repository's CISkip and SignOff options still apply. It is how an edit made for a
// person (a release, a lock) says what it is and who asked.
func WithMessage(fn func(*update.ChangeSet) string) UpdateOption {
	return func(o *updateOptions) { o.message = fn }
}

// message is the commit message of cs: the Update's own, or the template's.
func (r *Repo) message(cs *update.ChangeSet, uo updateOptions) (string, error) {
	if uo.message != nil {
		return finishMessage(uo.message(cs), r.opts)
	}
	return r.tmpl.render(cs, r.opts)
}
