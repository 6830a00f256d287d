package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// orderKind is how candidates are ranked.
type orderKind uint8

const (
	orderCreated      orderKind = iota // newest build time first
	orderSemver                        // highest version first
	orderAlphabetical                  // byte-wise greatest first (asc), least first (desc)
	orderNumerical                     // greatest number first (asc), least first (desc)
)

func (k orderKind) String() string {
	switch k {
	case orderSemver:
		return "semver"
	case orderAlphabetical:
		return "alphabetical"
	case orderNumerical:
		return "numerical"
	}
	return "created"
}

// order is the parsed value of the order= option (or the filter's default).
type order struct {
	kind orderKind
	desc bool     // alphabetical/numerical: the least value wins (Flux v2 "desc")
	tmpl template // what to rank: the tag itself when empty
}

// parseOrder parses KIND[:TEMPLATE][:asc|desc].
func parseOrder(s string) (order, error) {
	parts := strings.Split(s, ":")
	var o order
	switch parts[0] {
	case "created":
		o.kind = orderCreated
	case "semver":
		o.kind = orderSemver
	case "alphabetical":
		o.kind = orderAlphabetical
	case "numerical":
		o.kind = orderNumerical
	case "":
		return o, errors.New("empty order (want created, semver, alphabetical or numerical)")
	default:
		return o, fmt.Errorf("unknown order %q (want created, semver, alphabetical or numerical)", parts[0])
	}
	rest := parts[1:]
	if n := len(rest); n > 0 && (rest[n-1] == "asc" || rest[n-1] == "desc") {
		if o.kind == orderCreated || o.kind == orderSemver {
			return o, fmt.Errorf("order %s takes no direction %q (newest and highest always win)", o.kind, rest[n-1])
		}
		o.desc = rest[n-1] == "desc"
		rest = rest[:n-1]
	}
	if len(rest) > 0 {
		if o.kind == orderCreated {
			return o, errors.New("order created ranks build times and takes no template")
		}
		o.tmpl.raw = strings.Join(rest, ":")
		if !strings.Contains(o.tmpl.raw, "$") {
			return o, fmt.Errorf("order %s: %q is neither asc, desc nor a template such as $1 or $name", o.kind, o.tmpl.raw)
		}
	}
	return o, nil
}

// template is a regexp.Expand template ($1, ${1}, $name, ${name}, $$) that
// builds the ranking key from the filter regex's submatches.
type template struct {
	raw   string
	group int // the template is exactly one group reference: its index; else -1
}

// compileTemplate checks every reference against re: a reference to a group
// that does not exist is an error (regexp.Expand would silently use "").
func compileTemplate(raw string, re *regexp.Regexp) (template, error) {
	t := template{raw: raw, group: -1}
	refs := 0
	single := -1
	for i := 0; i < len(raw); i++ {
		if raw[i] != '$' {
			continue
		}
		if i+1 < len(raw) && raw[i+1] == '$' {
			i++
			continue
		}
		name, n, ok := templateRef(raw[i+1:])
		if !ok {
			return t, fmt.Errorf("template %q: bad reference at offset %d (write $1, ${1}, $name or ${name}; $$ for a dollar)", raw, i)
		}
		idx := groupIndex(re, name)
		if idx < 0 {
			return t, fmt.Errorf("template %q: the regex has no group %q", raw, name)
		}
		refs++
		if i == 0 && 1+n == len(raw) {
			single = idx
		}
		i += n
	}
	if refs == 0 {
		return t, fmt.Errorf("template %q references no group", raw)
	}
	t.group = single
	return t, nil
}

// templateRef reads a reference after "$": "{name}" or the longest run of
// letters, digits and underscores (regexp.Expand's rule: "$1x" names group
// "1x"). It returns the name and the bytes consumed.
func templateRef(s string) (string, int, bool) {
	if strings.HasPrefix(s, "{") {
		end := strings.IndexByte(s, '}')
		if end < 2 || !isName(s[1:end]) {
			return "", 0, false
		}
		return s[1:end], end + 1, true
	}
	n := 0
	for n < len(s) && isNameChar(s[n]) {
		n++
	}
	return s[:n], n, n > 0
}

func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return s != ""
}

func isNameChar(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// groupIndex resolves a reference as regexp.Expand does: all digits is a
// group number, anything else a group name.
func groupIndex(re *regexp.Regexp, name string) int {
	if allDigits(name) {
		n, ok := parseUintFull(name)
		if !ok || n > uint64(re.NumSubexp()) {
			return -1
		}
		return int(n)
	}
	return re.SubexpIndex(name)
}

// number is a parsed decimal [+-]digits[.digits], kept as text so that
// comparison is exact at any length (a 20-digit build number does not lose
// precision as it would in a float64).
type number struct {
	neg       bool
	int, frac string // int without leading zeros, frac without trailing zeros
}

func parseNumber(s string) (number, bool) {
	var n number
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		n.neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == start {
		return n, false
	}
	n.int = strings.TrimLeft(s[start:i], "0")
	if i < len(s) && s[i] == '.' {
		fs := i + 1
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == fs {
			return n, false
		}
		n.frac = strings.TrimRight(s[fs:i], "0")
	}
	if i != len(s) {
		return n, false
	}
	if n.int == "" && n.frac == "" {
		n.neg = false // -0 == 0
	}
	return n, true
}

func (a *number) compare(b *number) int {
	if a.neg != b.neg {
		if a.neg {
			return -1
		}
		return 1
	}
	d := cmpMagnitude(a, b)
	if a.neg {
		return -d
	}
	return d
}

func cmpMagnitude(a, b *number) int {
	if len(a.int) != len(b.int) {
		return cmpInt(len(a.int), len(b.int))
	}
	if c := strings.Compare(a.int, b.int); c != 0 {
		return c
	}
	return strings.Compare(a.frac, b.frac)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// key is what a candidate is ranked by; which field is used depends on the
// policy's order.
type key struct {
	v version   // orderSemver
	n number    // orderNumerical
	s string    // orderAlphabetical
	t time.Time // orderCreated
}

// cmpKeys compares primary keys under order o: >0 when a ranks above b.
func (o *order) cmpKeys(a, b *key) int {
	var d int
	switch o.kind {
	case orderCreated:
		d = a.t.Compare(b.t)
	case orderSemver:
		d = a.v.compare(&b.v)
	case orderAlphabetical:
		d = strings.Compare(a.s, b.s)
	case orderNumerical:
		d = a.n.compare(&b.n)
	}
	if o.desc {
		d = -d
	}
	return d
}

// above reports whether candidate a ranks strictly above candidate b. Ties on
// the primary key are broken so that the result never depends on input order:
//   - created: the lexically smaller tag wins (Flux v1's rule);
//   - semver: the version written with more components wins ("1.10.0" over
//     "1.10"), then the lexically greater tag ("v1.2.3" over "1.2.3", as Flux
//     v1);
//   - alphabetical and numerical: the lexically greater tag wins.
func (o *order) above(aTag string, a *key, bTag string, b *key) bool {
	if d := o.cmpKeys(a, b); d != 0 {
		return d > 0
	}
	switch o.kind {
	case orderCreated:
		return aTag < bTag
	case orderSemver:
		if a.v.parts != b.v.parts {
			return a.v.parts > b.v.parts
		}
	}
	return aTag > bTag
}
