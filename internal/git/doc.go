// Package git keeps a local mirror of a repository, commits edits and pushes them through an
// SSH deploy key (strict host key checking by default), retrying on push races. It is shared
// by the update and sync sides of imagebot and uses go-git, never a git binary.
//
// Not built yet: see the git issue.
package git
