// Package git keeps a local mirror of one branch of a repository, lets a caller edit a working
// tree of it, and commits and pushes those edits through an SSH deploy key (strict host key
// checking by default) or HTTPS credentials read from files. It uses go-git, never a git
// binary, and is shared by the update and sync sides of imagebot.
//
// # Layout of the data dir
//
//	DIR/mirror     a bare repository: refs/remotes/origin/BRANCH follows the remote (forced,
//	               so a rewritten upstream history is followed, not merged)
//	DIR/work       a working tree of the last fetched (or pushed) commit
//	DIR/work.json  which commit DIR/work holds, and whether an edit was in flight
//
// The working tree is kept cheaply: after a fetch only the files that differ between the old
// and new commit are rewritten; after a crash mid-edit (work.json says so) it is checked out
// afresh. A mirror that cannot be read is removed and cloned again, and Result says so.
//
// # Commits and pushes
//
// Repo.Update fetches, brings the working tree to the remote head, calls the edit function,
// and, when it changed something, commits exactly the changed files on top of that head
// (trees are rebuilt only along the changed paths, so a cycle costs the same in a repository
// of 20 files or 20,000) and pushes. A push that loses a race to another writer is retried
// from the new remote head: fetch, edit again (another writer may have made the same change
// already, and then nothing is committed), commit, push, up to MaxAttempts with jittered
// backoff. The checked-out branch is never force-pushed; a separate PushBranch (for review)
// is rebuilt on the branch head each time and is pushed with force.
//
// A push whose connection ends after the pack was sent and before the server's report
// (the server died mid-push) may or may not have landed; Update says so, and the next
// Update finds out by fetching: it pushes the change again only if the branch lacks it.
// Push options (Options.PushOptions) are sent as key=value, sorted by key, and only to a
// server that advertises the push-options capability; another server gets no push and the
// caller an error.
//
// Over HTTPS, Options.CABundle adds a private CA to the system's; certificate errors are not
// retried.
//
// No empty commits: if the edited files hash to the tree the head already has, nothing is
// committed.
//
// The commit message is the repository's template over the changes (MessageTemplate), or
// what WithMessage writes from them for one Update (a release or a lock asked for by a
// person); CISkip and SignOff apply to both.
//
// Defaults: Branch "main", MaxAttempts 5, network timeout 60s per fetch or push, backoff
// 200ms doubling to 5s with ±50% jitter, author and committer "imagebot
// <imagebot@users.noreply.imagebot.dev>".
package git
