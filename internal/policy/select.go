package policy

import (
	"fmt"
	"strings"
	"time"
)

// Candidate is a tag found in the registry with what the scanner knows of it.
type Candidate struct {
	Tag     string
	Digest  string    // "" when unknown; passed through to the Result
	Created time.Time // build time (the image config's "created"); zero when unknown
}

// Result is Select's answer.
type Result struct {
	// Tag is the tag to run: the chosen candidate, or the current tag when it
	// is kept. It is "" only when Select returns an error.
	Tag     string
	Digest  string    // the chosen candidate's digest, as given
	Created time.Time // the chosen tag's build time, when known
	// Changed is true when Tag is not the current tag: the caller should
	// update. False means keep (Tag is the current tag).
	Changed bool
	// Reason says in one sentence why Tag was chosen or kept, or why there is
	// none.
	Reason string
	// MissingBuildTime lists, in input order, the candidates that pass the
	// policy but were left out because the policy needs a build time
	// (order=created or min-age) and theirs is unknown.
	MissingBuildTime []string
	// TooYoung lists, in input order, the candidates that pass the policy but
	// were built less than min-age before now.
	TooYoung []string
}

// NeedsBuildTime reports whether Select needs Candidate.Created: the policy
// ranks by build time (unless its filter is a literal glob such as "latest",
// which admits one tag at most) or has a min-age. When it is false, the
// scanner need not fetch image configs at all.
func (p *Policy) NeedsBuildTime() bool { return p.needTime }

// Literal returns the one tag the policy can choose when its filter is a
// literal glob ("latest", "glob:stable"), which follows a mutable tag: ok is
// false for any other filter, or when the policy excludes that tag.
func (p *Policy) Literal() (tag string, ok bool) {
	if p.filter != filterGlob || !p.glob.lit || !p.Match(p.glob.pat) {
		return "", false
	}
	return p.glob.pat, true
}

// Match reports whether tag passes the policy: the "latest" rule, the filter,
// the exclusions, and, for orders that rank a value parsed from the tag (or
// from the part a template extracts), that the value parses. Build time and
// min-age are not considered.
func (p *Policy) Match(tag string) bool {
	var k key
	var buf []byte
	return p.admit(tag, time.Time{}, &k, &buf)
}

// Filter returns, in input order, the tags that Match. These are the tags a
// scanner must fetch build times for when NeedsBuildTime is true (plus the
// current tag, when it is not among them).
func (p *Policy) Filter(tags []string) []string {
	var out []string
	var k key
	var buf []byte
	for _, t := range tags {
		if p.admit(t, time.Time{}, &k, &buf) {
			out = append(out, t)
		}
	}
	return out
}

// Select chooses the tag to run among candidates, given the tag currently
// deployed (current.Tag, "" when none) and the time now (used only by
// min-age). It reads the candidates once and keeps the best so far; it does
// not sort.
//
// It never moves to a candidate that ranks at or below the current tag: when
// the current tag passes the policy it is ranked, whether or not it is still
// among the candidates, and kept unless a candidate ranks strictly above it.
// For order=created, its build time is current.Created when set, else the
// candidates' entry for it; when neither is known it is kept, whether or not
// it is among the candidates: no candidate can be shown to be newer, and a
// tag deleted from the registry is no reason to move backwards (the caller
// passes the build time it remembers in current.Created, or a person releases
// a tag by hand). A current tag that does not pass the policy
// (another line of tags, an excluded tag, "latest") is not ranked: the best
// candidate is chosen.
//
// When there is no tag to run, the error wraps ErrNoMatch and the Result
// still carries the Reason and the skipped candidates.
func (p *Policy) Select(candidates []Candidate, current Candidate, now time.Time) (Result, error) {
	var res Result
	if p.minAge > 0 && now.IsZero() {
		return res, fmt.Errorf("policy %q: min-age=%s needs the time now, and it is zero", p.spec, p.minAge)
	}
	var (
		best       *Candidate
		bestKey, k key
		buf        []byte
		curIn      bool
		curCreated time.Time
		curDigest  string
	)
	for i := range candidates {
		c := &candidates[i]
		if current.Tag != "" && c.Tag == current.Tag {
			if !curIn || curCreated.IsZero() {
				curCreated, curDigest = c.Created, c.Digest
			}
			curIn = true
		}
		if p.needTime {
			if c.Created.IsZero() {
				if p.admit(c.Tag, c.Created, &k, &buf) {
					res.MissingBuildTime = append(res.MissingBuildTime, c.Tag)
				}
				continue
			}
			if p.minAge > 0 && now.Sub(c.Created) < p.minAge {
				if p.admit(c.Tag, c.Created, &k, &buf) {
					res.TooYoung = append(res.TooYoung, c.Tag)
				}
				continue
			}
		}
		if p.tagKeyed {
			// The key comes from the tag alone: rank first, and run the
			// filter only for a candidate that would become the best.
			if !p.rawKey(c.Tag, c.Created, &k) {
				continue
			}
			if best != nil && !p.order.above(c.Tag, &k, best.Tag, &bestKey) {
				continue
			}
			if !p.preFilter(c.Tag) || !p.matchTagKeyed(c.Tag) || !p.keyOK(c.Tag, &k) {
				continue
			}
		} else {
			if !p.admit(c.Tag, c.Created, &k, &buf) {
				continue
			}
			if best != nil && !p.order.above(c.Tag, &k, best.Tag, &bestKey) {
				continue
			}
		}
		best, bestKey = c, k
	}
	return p.decide(res, best, &bestKey, current, curIn, curCreated, curDigest)
}

// decide compares the best candidate with the current tag.
func (p *Policy) decide(res Result, best *Candidate, bestKey *key, current Candidate, curIn bool, curCreated time.Time, curDigest string) (Result, error) {
	by := p.order.describe()
	keep := func(why string) (Result, error) {
		res.Tag, res.Changed, res.Reason = current.Tag, false, why
		res.Digest, res.Created = current.Digest, current.Created
		if curIn {
			if res.Digest == "" {
				res.Digest = curDigest
			}
			if res.Created.IsZero() {
				res.Created = curCreated
			}
		}
		return res, nil
	}
	var (
		curKey    key
		buf       []byte
		curRanked bool
		curNote   string // why the current tag is not ranked
	)
	if current.Tag != "" {
		created := current.Created
		if created.IsZero() {
			created = curCreated
		}
		switch {
		case !p.admit(current.Tag, created, &curKey, &buf):
			curNote = fmt.Sprintf("current tag %s does not pass the policy", current.Tag)
		case p.order.kind == orderCreated && p.needTime && created.IsZero():
			if curIn {
				what := "no candidate"
				if best != nil {
					what = best.Tag
				}
				return keep(fmt.Sprintf("keeping current tag %s: its build time is unknown, so %s cannot be shown to be newer", current.Tag, what))
			}
			// Gone from the registry and its build time unknown: no candidate can be
			// shown to rank above it, and moving could be a downgrade.
			return keep(fmt.Sprintf("keeping current tag %s: it is gone from the registry and its build time is unknown, so no candidate can be shown to be newer (moving could be a downgrade); release a tag by hand to move", current.Tag))
		default:
			curRanked = true
		}
	}
	if best == nil {
		summary := p.noneSummary(&res)
		if curRanked {
			return keep(fmt.Sprintf("keeping current tag %s: %s", current.Tag, summary))
		}
		if curNote != "" {
			summary += "; " + curNote
		}
		res.Reason = summary
		return res, fmt.Errorf("policy %q: %w: %s", p.spec, ErrNoMatch, summary)
	}
	if best.Tag == current.Tag {
		return keep(fmt.Sprintf("current tag %s is the best candidate %s", current.Tag, by))
	}
	if curRanked && p.order.cmpKeys(bestKey, &curKey) <= 0 {
		return keep(fmt.Sprintf("keeping current tag %s: it ranks at or above the best candidate %s %s", current.Tag, best.Tag, by))
	}
	res.Tag, res.Digest, res.Created, res.Changed = best.Tag, best.Digest, best.Created, true
	switch {
	case current.Tag == "":
		res.Reason = fmt.Sprintf("%s is the best candidate %s", best.Tag, by)
	case curRanked:
		res.Reason = fmt.Sprintf("%s ranks above current tag %s %s", best.Tag, current.Tag, by)
	default:
		res.Reason = fmt.Sprintf("%s is the best candidate %s; %s, so it is not ranked", best.Tag, by, curNote)
	}
	return res, nil
}

func (p *Policy) noneSummary(res *Result) string {
	s := "no candidate passes the policy"
	if n := len(res.MissingBuildTime); n > 0 {
		s += fmt.Sprintf("; %d pass but have no build time", n)
	}
	if n := len(res.TooYoung); n > 0 {
		s += fmt.Sprintf("; %d pass but are younger than min-age %s", n, p.minAge)
	}
	return s
}

func (o *order) describe() string {
	switch o.kind {
	case orderSemver:
		return "by semver"
	case orderAlphabetical:
		if o.desc {
			return "alphabetically (least first)"
		}
		return "alphabetically"
	case orderNumerical:
		if o.desc {
			return "numerically (least first)"
		}
		return "numerically"
	}
	return "by build time"
}

func isLatest(tag string) bool { return len(tag) == 6 && strings.EqualFold(tag, "latest") }

// preFilter rejects the empty tag (never valid) and applies the "latest" rule
// and the exclusions.
func (p *Policy) preFilter(tag string) bool {
	if tag == "" || !p.allowLatest && isLatest(tag) {
		return false
	}
	for _, g := range p.exclude {
		if g.match(tag) {
			return false
		}
	}
	return true
}

// admit reports whether tag passes the policy and computes its key into k.
func (p *Policy) admit(tag string, created time.Time, k *key, buf *[]byte) bool {
	if !p.preFilter(tag) {
		return false
	}
	ks := tag
	if p.tagKeyed {
		if !p.matchTagKeyed(tag) {
			return false
		}
	} else {
		m := p.re.FindStringSubmatchIndex(tag)
		if m == nil {
			return false
		}
		if g := p.order.tmpl.group; g >= 0 {
			ks = ""
			if m[2*g] >= 0 {
				ks = tag[m[2*g]:m[2*g+1]]
			}
		} else {
			*buf = p.re.ExpandString((*buf)[:0], p.order.tmpl.raw, tag, m)
			ks = string(*buf)
		}
	}
	return p.rawKey(ks, created, k) && p.keyOK(ks, k)
}

// matchTagKeyed runs the filter for a policy whose key is the tag's own. For
// a semver filter ranked by semver, the constraint is checked by keyOK on the
// already parsed version.
func (p *Policy) matchTagKeyed(tag string) bool {
	switch p.filter {
	case filterGlob:
		return p.glob.match(tag)
	case filterRegex:
		return p.re.MatchString(tag)
	}
	if p.order.kind == orderSemver {
		return true
	}
	v, ok := parseVersion(tag)
	return ok && p.cons.check(&v, tag)
}

// rawKey parses s (the tag or the extracted part) into the key.
func (p *Policy) rawKey(s string, created time.Time, k *key) bool {
	switch p.order.kind {
	case orderCreated:
		k.t = created
	case orderSemver:
		v, ok := parseVersion(s)
		if !ok {
			return false
		}
		k.v = v
	case orderAlphabetical:
		k.s = s
	case orderNumerical:
		n, ok := parseNumber(s)
		if !ok {
			return false
		}
		k.n = n
	}
	return true
}

// keyOK checks the semver constraint on a semver key (the semver: filter's
// constraint, or range=, "*" by default).
func (p *Policy) keyOK(s string, k *key) bool {
	if p.order.kind != orderSemver {
		return true
	}
	return p.cons.check(&k.v, s)
}
