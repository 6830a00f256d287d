package update

import (
	"errors"
	"fmt"
)

// Sentinel errors. Problems and edit errors wrap one of these, so callers branch with
// errors.Is.
var (
	// ErrMalformed: the file is not valid YAML (syntax error, bad indentation, …).
	ErrMalformed = errors.New("malformed YAML")
	// ErrDuplicateKey: a mapping holds the same key twice.
	ErrDuplicateKey = errors.New("duplicate key")
	// ErrAliasLimit: the file uses more aliases than MaxAliases (an alias bomb, "billion laughs").
	ErrAliasLimit = errors.New("too many aliases")
	// ErrNotUTF8: the file is not valid UTF-8 (UTF-16 files included).
	ErrNotUTF8 = errors.New("not UTF-8")
	// ErrBinary: the file holds NUL bytes.
	ErrBinary = errors.New("binary file")
	// ErrTooLarge: the file is larger than MaxFileSize; it was skipped.
	ErrTooLarge = errors.New("file too large")
	// ErrSymlink: a symlink that leaves the repository (or cannot be resolved) was skipped.
	ErrSymlink = errors.New("symlink leaves the repository")
	// ErrUnknownContainer: an annotation names a container the workload does not have.
	ErrUnknownContainer = errors.New("unknown container")
	// ErrInvalidPolicy: a policy spec was rejected by Finder.ValidatePolicy.
	ErrInvalidPolicy = errors.New("invalid policy")
	// ErrInvalidMarker: a marker comment could not be read.
	ErrInvalidMarker = errors.New("invalid marker")
	// ErrUnknownMarkerPolicy: a $imagepolicy marker names a policy that is not in Finder.Markers.
	ErrUnknownMarkerPolicy = errors.New("unknown image policy")
	// ErrBadMapping: a HelmRelease repository/tag.fluxcd.io mapping names no string value.
	ErrBadMapping = errors.New("image mapping does not resolve")
	// ErrInvalidImage: an image value is not a valid image reference.
	ErrInvalidImage = errors.New("invalid image reference")
	// ErrUnsupported: the value is written in a form the byte editor does not edit
	// (block scalar, multi-line scalar, alias, flow collection for an insert, …).
	ErrUnsupported = errors.New("unsupported YAML form")
	// ErrTargetNotFound: a decision names a target that is no longer in its file.
	ErrTargetNotFound = errors.New("target not found")
	// ErrStale: the file changed since the target was found (its current value differs).
	ErrStale = errors.New("target changed since it was found")
	// ErrCannotExpress: the new reference changes a part that the target's fields cannot hold
	// (a new repository for a tag-only field, a digest with nowhere to go, …).
	ErrCannotExpress = errors.New("cannot express the new reference in the existing fields")
	// ErrVerify: re-parsing the edited bytes did not show exactly the intended change.
	ErrVerify = errors.New("edit verification failed")
	// ErrWorkloadNotFound: an annotation edit names a workload that is in no file.
	ErrWorkloadNotFound = errors.New("workload not found")
	// ErrAmbiguous: an annotation edit names a workload found in more than one place.
	ErrAmbiguous = errors.New("workload found more than once")
)

// Problem is something wrong with the input that Find reported instead of failing:
// a file that could not be read or parsed, or an annotation or marker that was not
// used. A problem that is only a Warning did not stop anything.
type Problem struct {
	File    string // repository-relative, slash-separated
	Line    int    // 1-based; 0 when the problem is about the whole file
	Column  int    // 1-based; 0 when unknown
	Field   string // YAML path or annotation key, "" when not about one field
	Err     error  // wraps one of the sentinel errors
	Warning bool   // true when nothing was skipped because of it (e.g. a large file is only a warning)
}

// Error formats the problem as file:line:col: field: reason.
func (p Problem) Error() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, p.Line)
		if p.Column > 0 {
			loc = fmt.Sprintf("%s:%d", loc, p.Column)
		}
	}
	if p.Field != "" {
		return fmt.Sprintf("%s: %s: %v", loc, p.Field, p.Err)
	}
	return fmt.Sprintf("%s: %v", loc, p.Err)
}

// Unwrap returns the underlying error.
func (p Problem) Unwrap() error { return p.Err }

// EditError is returned by the editing functions; it names the file, the line and the
// field that could not be edited and wraps a sentinel error.
type EditError struct {
	File  string
	Line  int
	Field string
	Err   error
}

func (e *EditError) Error() string {
	p := Problem{File: e.File, Line: e.Line, Field: e.Field, Err: e.Err}
	return p.Error()
}

// Unwrap returns the underlying error.
func (e *EditError) Unwrap() error { return e.Err }
