package policy

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
)

// FuzzParse: Parse never panics, errors wrap ErrInvalid, and a parsed policy
// round-trips and can be used.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"glob:develop-v*", "*", "latest", "semver:~1.2", "semver:>=1.2.3-0 <2 || 3.x", "regex:^main-",
		`regex:^main-(\d+)-;order=numerical:$1;exclude=*-debug,*.sig;min-age=1h`,
		"glob:*;order=alphabetical:desc", `regex:^a\;b(?P<x>\d)$;order=semver:${x};range=^1`,
		"glob:[!a-]*?\\*", "glob:*;min-age=1d12h", "regexp:(;order=created", "semver:;", ";;;", "x:y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		p, err := Parse(spec)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", spec, err)
			}
			return
		}
		if p.String() != spec {
			t.Fatalf("String() = %q, want %q", p.String(), spec)
		}
		tags := []string{"", "latest", "1.2.3", "v1.2.3-rc.1", "main-1700000000-abc", "develop-v1", "a;b", "x.sig"}
		p.Filter(tags)
		cands := make([]Candidate, len(tags))
		for i, tag := range tags {
			cands[i] = Candidate{Tag: tag, Created: at(i)}
		}
		if _, err := p.Select(cands, Candidate{Tag: "1.2.3"}, now); err != nil && !errors.Is(err, ErrNoMatch) {
			t.Fatalf("Select: unexpected error %v", err)
		}
	})
}

// FuzzSelect checks Select against a naive reference (library parsing,
// regexp globs, big.Rat numbers, a full sort) and checks its invariants.
func FuzzSelect(f *testing.F) {
	f.Add("semver:~1.2", "1.2.0 1.2.10 1.2.9 v1.2.10 1.3.0 1.2.11-rc.1 latest junk 1.2", "1.2.9", uint64(1))
	f.Add("glob:develop-v*", "develop-v1 develop-v2 develop-v3 master latest", "develop-v2", uint64(2))
	f.Add(`regex:^main-(\d+)-[a-f0-9]+$;order=numerical:$1`, "main-10-abc main-9-def main-100-0 main-x-1 main-010-f", "main-9-def", uint64(3))
	f.Add("glob:*;order=alphabetical:desc;exclude=*.sig", "b a c a.sig A", "", uint64(4))
	f.Add(`regex:^r(\d+)_(\d+)$;order=semver:$1.$2;range=>=1.0.0-0`, "r1_9 r1_10 r2_0 r01_2", "r1_9", uint64(5))
	f.Add("semver:*;min-age=3h", "1.0.0 1.1.0 1.10 1.10.0 v1.10.0", "1.1.0", uint64(6))
	f.Add("glob:*;order=numerical:desc", "1 -1 0.5 -0 +3 1.50 x", "0.5", uint64(7))
	f.Fuzz(func(t *testing.T, spec, tagList, current string, seed uint64) {
		p, err := Parse(spec)
		if err != nil {
			return
		}
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		var cands []Candidate
		seen := map[string]bool{}
		for _, tag := range strings.Fields(tagList) {
			if !isASCII(tag) || seen[tag] {
				continue // tags are ASCII (the reference's regexps work on runes) and listed once
			}
			seen[tag] = true
			c := Candidate{Tag: tag, Digest: "d:" + tag}
			if rng.IntN(8) != 0 { // some build times unknown
				c.Created = at(rng.IntN(12)) // few distinct times: ties happen
			}
			cands = append(cands, c)
		}
		if len(cands) > 64 {
			cands = cands[:64]
		}
		ref := newReference(t, p)

		// Without a current tag: the reference's best.
		res, err := p.Select(cands, Candidate{}, now)
		want := ref.best(cands)
		if got := res.Tag; got != want {
			t.Fatalf("Select = %q (%v, %s), reference says %q", got, err, res.Reason, want)
		}
		if (err != nil) != (want == "") {
			t.Fatalf("err = %v with reference best %q", err, want)
		}

		// With a current tag: invariants and no downgrade.
		if !isASCII(current) {
			current = ""
		}
		curC := Candidate{Tag: current}
		res, err = p.Select(cands, curC, now)
		switch {
		case err != nil:
			if !errors.Is(err, ErrNoMatch) || res.Tag != "" || res.Changed {
				t.Fatalf("bad error result %+v, %v", res, err)
			}
		case !res.Changed:
			if res.Tag != current || current == "" {
				t.Fatalf("kept %q, current is %q", res.Tag, current)
			}
		default:
			if res.Tag == current || !p.Match(res.Tag) {
				t.Fatalf("changed to %q (current %q), which the policy does not match", res.Tag, current)
			}
			if current != "" && p.order.kind == orderCreated && p.needTime && p.Match(current) {
				if _, ok := ref.key(curC, cands); !ok {
					t.Fatalf("moved from %q, whose build time is unknown, to %q", current, res.Tag)
				}
			}
			if ck, ok := ref.key(curC, cands); ok && current != "" {
				nk, _ := ref.key(Candidate{Tag: res.Tag}, cands)
				if ref.cmp(nk, ck) <= 0 {
					t.Fatalf("downgrade: %q does not rank above current %q", res.Tag, current)
				}
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// reference is a slow, obvious implementation of the documented rules.
type reference struct {
	t       *testing.T
	p       *Policy
	filter  func(string) bool
	exclude []*regexp.Regexp
	cons    *semver.Constraints
}

type refKey struct {
	tag   string
	v     *semver.Version
	parts int
	n     *big.Rat
	s     string
	t     time.Time
}

func newReference(t *testing.T, p *Policy) *reference {
	r := &reference{t: t, p: p}
	if p.cons != nil {
		r.cons = p.cons.lib
	}
	switch p.filter {
	case filterGlob:
		re := globToRegexp(t, p.glob.pat)
		r.filter = re.MatchString
	case filterRegex:
		r.filter = p.re.MatchString
	case filterSemver:
		r.filter = func(tag string) bool {
			v, err := semver.NewVersion(tag)
			return err == nil && r.cons.Check(v)
		}
	}
	for _, g := range p.exclude {
		r.exclude = append(r.exclude, globToRegexp(t, g.pat))
	}
	return r
}

// globToRegexp translates a glob to an anchored regexp over bytes (the fuzz
// tags are ASCII, where bytes and runes agree).
func globToRegexp(t *testing.T, pat string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^(?s)`)
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '\\':
			i++
			b.WriteString(regexp.QuoteMeta(pat[i : i+1]))
		case '[':
			j := i + 1
			b.WriteString("[")
			if pat[j] == '!' || pat[j] == '^' {
				b.WriteString("^")
				j++
			}
			hex := func(c byte) string { return `\x{` + big.NewInt(int64(c)).Text(16) + `}` }
			for pat[j] != ']' {
				if pat[j] == '\\' {
					j++
				}
				lo := pat[j]
				j++
				if pat[j] == '-' && pat[j+1] != ']' {
					j++
					if pat[j] == '\\' {
						j++
					}
					b.WriteString(hex(lo) + "-" + hex(pat[j]))
					j++
					continue
				}
				b.WriteString(hex(lo))
			}
			b.WriteString("]")
			i = j
		default:
			b.WriteString(regexp.QuoteMeta(pat[i : i+1]))
		}
	}
	b.WriteString(`$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		t.Skipf("glob %q does not translate simply (%v)", pat, err)
	}
	return re
}

var refNumber = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?$`)

// key computes the ranking key of c, or false if c does not pass the policy.
// For order=created the build time comes from c, else from cands.
func (r *reference) key(c Candidate, cands []Candidate) (refKey, bool) {
	p := r.p
	k := refKey{tag: c.Tag}
	if strings.EqualFold(c.Tag, "latest") && !(p.filter == filterGlob && p.glob.pat == "latest") {
		return k, false
	}
	for _, re := range r.exclude {
		if re.MatchString(c.Tag) {
			return k, false
		}
	}
	if !r.filter(c.Tag) {
		return k, false
	}
	s := c.Tag
	if p.order.tmpl.raw != "" {
		m := p.re.FindStringSubmatchIndex(c.Tag)
		s = string(p.re.ExpandString(nil, p.order.tmpl.raw, c.Tag, m))
	}
	switch p.order.kind {
	case orderCreated:
		k.t = c.Created
		if k.t.IsZero() {
			for _, o := range cands {
				if o.Tag == c.Tag && !o.Created.IsZero() {
					k.t = o.Created
					break
				}
			}
		}
		if k.t.IsZero() && p.needTime {
			return k, false
		}
	case orderSemver:
		v, err := semver.NewVersion(s)
		if err != nil || !r.cons.Check(v) {
			return k, false
		}
		k.v = v
		core := strings.TrimPrefix(s, "v")
		if i := strings.IndexAny(core, "-+"); i >= 0 {
			core = core[:i]
		}
		k.parts = strings.Count(core, ".") + 1
	case orderAlphabetical:
		k.s = s
	case orderNumerical:
		if !refNumber.MatchString(s) {
			return k, false
		}
		k.n, _ = new(big.Rat).SetString(s)
	}
	return k, true
}

// cmp compares primary keys: >0 when a ranks above b.
func (r *reference) cmp(a, b refKey) int {
	var d int
	switch r.p.order.kind {
	case orderCreated:
		d = a.t.Compare(b.t)
	case orderSemver:
		d = a.v.Compare(b.v)
	case orderAlphabetical:
		d = strings.Compare(a.s, b.s)
	case orderNumerical:
		d = a.n.Cmp(b.n)
	}
	if r.p.order.desc {
		d = -d
	}
	return d
}

func (r *reference) best(cands []Candidate) string {
	var ks []refKey
	for _, c := range cands {
		if r.p.needTime && c.Created.IsZero() {
			continue
		}
		if r.p.minAge > 0 && now.Sub(c.Created) < r.p.minAge {
			continue
		}
		if k, ok := r.key(c, nil); ok {
			k.t = c.Created
			ks = append(ks, k)
		}
	}
	if len(ks) == 0 {
		return ""
	}
	sort.SliceStable(ks, func(i, j int) bool {
		a, b := ks[i], ks[j]
		if d := r.cmp(a, b); d != 0 {
			return d > 0
		}
		switch r.p.order.kind {
		case orderCreated:
			return a.tag < b.tag
		case orderSemver:
			if a.parts != b.parts {
				return a.parts > b.parts
			}
		}
		return a.tag > b.tag
	})
	return ks[0].tag
}

// FuzzVersion holds the version parser and comparison to the library.
func FuzzVersion(f *testing.F) {
	for _, s := range versionCorpus {
		f.Add(s, "1.2.3")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		checkVersion(t, a)
		checkVersion(t, b)
		checkCompare(t, a, b)
	})
}

// FuzzConstraint holds the compiled constraint to the library's Check.
func FuzzConstraint(f *testing.F) {
	for i, c := range constraintCorpus {
		f.Add(c, checkVersions[i%len(checkVersions)])
	}
	f.Fuzz(func(t *testing.T, cs, vs string) {
		lib, err := semver.NewConstraint(cs)
		c, err2 := parseConstraint(cs)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("constraint %q: library err %v, ours %v", cs, err, err2)
		}
		if err != nil {
			return
		}
		if c.groups == nil {
			t.Fatalf("constraint %q (normalised %q) fell back to the library", cs, lib.String())
		}
		checkConstraint(t, c, lib, cs, vs)
		for _, v := range checkVersions {
			checkConstraint(t, c, lib, cs, v)
		}
	})
}
