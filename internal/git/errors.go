package git

import "errors"

var (
	// ErrHostKey: the server's host key is unknown or does not match known_hosts.
	ErrHostKey = errors.New("ssh host key check failed")
	// ErrAuth: the server refused the credentials.
	ErrAuth = errors.New("git authentication failed")
	// ErrBranchNotFound: the configured branch does not exist on the remote.
	ErrBranchNotFound = errors.New("branch not found")
	// ErrPushRace: every attempt to push lost a race with another writer.
	ErrPushRace = errors.New("push kept losing races with other writers")
)
