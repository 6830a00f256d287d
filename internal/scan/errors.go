package scan

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Sentinel errors for the conditions callers branch on. Errors returned by this package wrap
// them (test with errors.Is).
var (
	// ErrRateLimited: the registry answered 429 Too Many Requests and retrying did not help
	// (or it asked for a wait longer than Options.MaxRetryAfter). RetryAfter tells how long
	// it asked for.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnauthorized: the registry refused the credentials (401) or the access (403).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound: the repository, manifest or blob does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the registry kept failing (5xx, resets, timeouts) through every retry.
	ErrUnavailable = errors.New("registry unavailable")
	// ErrBadResponse: the registry's answer cannot be used: malformed JSON, a looping or
	// foreign Link header, an invalid tag name, a digest that does not match its content.
	ErrBadResponse = errors.New("bad response")
	// ErrTagCap: the repository lists more tags than Options.TagCap. The listing is partial,
	// so it is not used; raise the cap for this repository.
	ErrTagCap = errors.New("tag cap reached")
	// ErrPullBudget: the registry's announced pull budget (Docker Hub's RateLimit-Remaining)
	// is down to the reserve, so manifest GETs to it wait; the error is a *BudgetError and
	// also wraps ErrRateLimited.
	ErrPullBudget = errors.New("pull budget paused")
)

// StatusError is an HTTP status from a registry that the scanner gave up on.
type StatusError struct {
	StatusCode int
	// RetryAfter is the wait the registry asked for (Retry-After), zero when it did not.
	RetryAfter time.Duration
	// Code is the registry's first error code (e.g. "UNAUTHORIZED"), when it sent one.
	Code string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry in %s)", e.RetryAfter.Round(time.Second))
	}
	return s
}

// Is maps statuses to the package's sentinels.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrUnavailable:
		return e.StatusCode >= 500
	}
	return false
}

// RetryAfter returns the wait a registry asked for in err (429 or 503 with Retry-After),
// if any.
func RetryAfter(err error) (time.Duration, bool) {
	var be *BudgetError
	if errors.As(err, &be) {
		return max(time.Until(be.Until), time.Millisecond), true
	}
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > 0 {
		return se.RetryAfter, true
	}
	return 0, false
}

// attemptsError says that a request kept failing through its retries.
type attemptsError struct {
	attempts int
	last     error
}

func (e *attemptsError) Error() string {
	return fmt.Sprintf("%v (after %d attempts)", e.last, e.attempts)
}

func (e *attemptsError) Unwrap() []error { return []error{e.last, ErrUnavailable} }

// badResponse builds an error wrapping ErrBadResponse.
func badResponse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadResponse, fmt.Sprintf(format, args...))
}

// fromTransport converts go-containerregistry's *transport.Error (from its auth handshake)
// into a StatusError, keeping the registry's error code but not its free text, which may
// quote request details.
func fromTransport(err error) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return err
	}
	se := &StatusError{StatusCode: te.StatusCode}
	if len(te.Errors) > 0 {
		se.Code = string(te.Errors[0].Code)
	}
	return se
}

// permanent reports whether err is about one tag's content and will not heal by retrying
// soon: such a tag is reported in Result.TagErrors and the scan goes on.
func permanent(err error) bool {
	var re *redirectError
	if errors.As(err, &re) {
		return false // the registry's redirects, not the tag, are broken
	}
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadResponse)
}

// redirectError is a redirect the client refused or gave up on (to a private address
// from a public registry, a loop, too many hops): a fault of the registry, not of one tag,
// so it fails the scan.
type redirectError struct{ msg string }

func (e *redirectError) Error() string        { return e.msg }
func (e *redirectError) Is(target error) bool { return target == ErrBadResponse }

// reason is a failure's metric label.
func reason(err error) string {
	switch {
	case errors.Is(err, ErrPullBudget):
		return "pull_budget"
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrTagCap):
		return "tag_cap"
	case errors.Is(err, ErrBadResponse):
		return "bad_response"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}
