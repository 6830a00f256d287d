package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrInvalid is wrapped by every error Parse returns: the spec is not a
	// policy. The message quotes the spec and says what is wrong.
	ErrInvalid = errors.New("invalid policy")
	// ErrNoMatch is wrapped by Select's error when there is no tag to run:
	// no candidate passes the policy and the current tag cannot be kept.
	ErrNoMatch = errors.New("no tag matches the policy")
)

// MaxSpecLen bounds the length of a spec, in bytes.
const MaxSpecLen = 4096

type filterKind uint8

const (
	filterGlob filterKind = iota
	filterSemver
	filterRegex
)

// Policy is a parsed spec. It is immutable and safe for concurrent use.
type Policy struct {
	spec    string
	filter  filterKind
	glob    *glob          // filterGlob
	re      *regexp.Regexp // filterRegex
	cons    *constraint    // filterSemver's constraint, or range= (order semver)
	order   order
	exclude []*glob
	minAge  time.Duration

	allowLatest bool // the filter is the glob "latest"
	tagKeyed    bool // the ranking key does not depend on the filter regex
	needTime    bool // Select needs Candidate.Created
}

// String returns the spec the policy was parsed from, verbatim.
func (p *Policy) String() string { return p.spec }

// MarshalText returns the spec (encoding.TextMarshaler), so a Policy can sit
// in a config struct (a value receiver, so that a Policy field marshals too).
func (p Policy) MarshalText() ([]byte, error) { return []byte(p.spec), nil }

// UnmarshalText parses a spec into p (encoding.TextUnmarshaler). Errors wrap
// ErrInvalid.
func (p *Policy) UnmarshalText(text []byte) error {
	q, err := Parse(string(text))
	if err != nil {
		return err
	}
	*p = *q
	return nil
}

// Parse parses a spec (see the package documentation for the syntax). Every
// error wraps ErrInvalid.
func Parse(spec string) (*Policy, error) {
	p, err := parse(spec)
	if err != nil {
		if len(spec) > 200 {
			spec = spec[:200] + "…"
		}
		return nil, fmt.Errorf("%w %q: %w", ErrInvalid, spec, err)
	}
	return p, nil
}

func parse(spec string) (*Policy, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("empty spec")
	}
	if len(spec) > MaxSpecLen {
		return nil, fmt.Errorf("spec is %d bytes long, more than %d", len(spec), MaxSpecLen)
	}
	segs := splitUnescaped(spec)
	p := &Policy{spec: spec}
	if err := p.parseFilter(segs[0]); err != nil {
		return nil, err
	}
	var rangeSpec string
	seen := map[string]bool{}
	orderSet := false
	for _, seg := range segs[1:] {
		opt := strings.TrimSpace(seg)
		if opt == "" {
			return nil, errors.New(`empty option (a stray ";"? a regex needing ";" writes "\;")`)
		}
		name, val, ok := strings.Cut(opt, "=")
		name = strings.TrimSpace(name)
		val = strings.TrimSpace(val)
		if !ok {
			return nil, fmt.Errorf("option %q: want name=value", opt)
		}
		if seen[name] {
			return nil, fmt.Errorf("option %q given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "order":
			p.order, err = parseOrder(val)
			orderSet = true
		case "exclude":
			p.exclude, err = parseExclude(val)
		case "min-age":
			p.minAge, err = parseAge(val)
		case "range":
			rangeSpec = val
		default:
			err = fmt.Errorf("unknown option %q (want order, exclude, min-age or range)", name)
		}
		if err != nil {
			if name == "exclude" || name == "min-age" {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			return nil, err
		}
	}
	if !orderSet && p.filter == filterSemver {
		p.order.kind = orderSemver
	}
	if err := p.finish(rangeSpec, seen["range"]); err != nil {
		return nil, err
	}
	return p, nil
}

// splitUnescaped splits spec at each ";" that is not escaped by a backslash
// (one preceded by an odd number of backslashes is escaped). The backslashes
// stay in the text: in a regex "\;" is a literal ";".
func splitUnescaped(spec string) []string {
	var segs []string
	start, backslashes := 0, 0
	for i := 0; i < len(spec); i++ {
		switch spec[i] {
		case '\\':
			backslashes++
			continue
		case ';':
			if backslashes%2 == 0 {
				segs = append(segs, spec[start:i])
				start = i + 1
			}
		}
		backslashes = 0
	}
	return append(segs, spec[start:])
}

var prefixRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*:`)

func (p *Policy) parseFilter(f string) error {
	var body string
	switch {
	case strings.HasPrefix(f, "glob:"):
		body = f[len("glob:"):]
		p.filter = filterGlob
	case strings.HasPrefix(f, "semver:"):
		body = f[len("semver:"):]
		p.filter = filterSemver
	case strings.HasPrefix(f, "regex:"):
		body = f[len("regex:"):]
		p.filter = filterRegex
	case strings.HasPrefix(f, "regexp:"):
		body = f[len("regexp:"):]
		p.filter = filterRegex
	default:
		if m := prefixRe.FindString(f); m != "" {
			return fmt.Errorf("unknown prefix %q (want glob:, semver:, regex: or regexp:, in lower case)", m)
		}
		body = f
		p.filter = filterGlob
	}
	if strings.TrimSpace(body) == "" {
		return errors.New("empty filter (to match every tag write glob:*)")
	}
	var err error
	switch p.filter {
	case filterGlob:
		if p.glob, err = compileGlob(body); err != nil {
			return fmt.Errorf("glob %q: %w", body, err)
		}
		p.allowLatest = p.glob.lit && p.glob.pat == "latest"
	case filterSemver:
		if p.cons, err = parseConstraint(body); err != nil {
			return fmt.Errorf("semver constraint %q: %w", body, err)
		}
	case filterRegex:
		if p.re, err = regexp.Compile(body); err != nil {
			return fmt.Errorf("regex: %w", err)
		}
	}
	return nil
}

func parseExclude(val string) ([]*glob, error) {
	if val == "" {
		return nil, errors.New("no patterns")
	}
	var gs []*glob
	for _, pat := range strings.Split(val, ",") {
		pat = strings.TrimSpace(pat)
		if pat == "" {
			return nil, fmt.Errorf("empty pattern in %q", val)
		}
		g, err := compileGlob(pat)
		if err != nil {
			return nil, fmt.Errorf("glob %q: %w", pat, err)
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// parseAge parses a positive Go duration ("90m", "1h30m") optionally led by
// whole days ("7d", "1d12h").
func parseAge(val string) (time.Duration, error) {
	if val == "" {
		return 0, errors.New("empty duration (e.g. 90m, 1h30m, 7d, 1d12h)")
	}
	var days time.Duration
	rest := val
	if i := strings.IndexByte(val, 'd'); i > 0 {
		n, err := strconv.ParseUint(val[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q (e.g. 90m, 1h30m, 7d, 1d12h)", val)
		}
		days = time.Duration(n) * 24 * time.Hour
		rest = val[i+1:]
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, fmt.Errorf("bad duration %q (e.g. 90m, 1h30m, 7d, 1d12h)", val)
		}
	}
	if d+days <= 0 || d < 0 {
		return 0, fmt.Errorf("duration %q is not positive", val)
	}
	return d + days, nil
}

// finish checks how the filter and the options combine and sets derived
// fields.
func (p *Policy) finish(rangeSpec string, hasRange bool) error {
	o := &p.order
	if o.tmpl.raw != "" {
		if p.filter != filterRegex {
			return fmt.Errorf("order %s:%s: a template needs a regex filter to take groups from", o.kind, o.tmpl.raw)
		}
		t, err := compileTemplate(o.tmpl.raw, p.re)
		if err != nil {
			return fmt.Errorf("order: %w", err)
		}
		o.tmpl = t
	}
	if hasRange {
		if o.kind != orderSemver || p.filter == filterSemver {
			return errors.New("range= applies to order=semver on a glob: or regex: filter (a semver: filter carries its own range)")
		}
		if rangeSpec == "" {
			return errors.New("range: empty constraint")
		}
		c, err := parseConstraint(rangeSpec)
		if err != nil {
			return fmt.Errorf("range %q: %w", rangeSpec, err)
		}
		p.cons = c
	} else if o.kind == orderSemver && p.cons == nil {
		p.cons, _ = parseConstraint("*") // any release; pre-releases need a range naming one
	}
	p.tagKeyed = o.tmpl.raw == ""
	literal := p.filter == filterGlob && p.glob.lit
	p.needTime = p.minAge > 0 || (o.kind == orderCreated && !literal)
	return nil
}
