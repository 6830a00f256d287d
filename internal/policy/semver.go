package policy

// This file holds an allocation-free mirror of Masterminds/semver v3's
// version parsing (semver.NewVersion with its default CoerceNewVersion=true)
// and comparison (Version.Compare). The library allocates a regexp match and a
// *Version per call (about 1.3µs and 8 allocations per tag, measured), which is
// too slow for 100k tags. TestVersionMatchesMasterminds and FuzzVersion check
// that both sides agree on every input, so the library stays the reference.

// maxVersionLen mirrors semver.MaxVersionLen: longer strings are not versions.
const maxVersionLen = 256

// version is a parsed semantic version. pre and meta are substrings of the
// parsed string (no allocation). parts counts the numeric components written
// (1 for "1", 2 for "1.10", 3 for "1.10.0"), used to prefer the explicit form
// between equal versions.
type version struct {
	major, minor, patch uint64
	pre, meta           string
	parts               uint8
}

// parseVersion accepts exactly what semver.NewVersion accepts:
// v?N(.N)?(.N)?(-PRE)?(+META)? where N are decimal digits (leading zeros
// allowed, at most uint64), PRE and META are dot-separated non-empty
// identifiers of [0-9A-Za-z-], and numeric PRE identifiers have no leading
// zero. A leading "v" must be lower case.
func parseVersion(s string) (version, bool) {
	var v version
	if len(s) == 0 || len(s) > maxVersionLen {
		return v, false
	}
	i := 0
	if s[0] == 'v' {
		i = 1
	}
	var ok bool
	if v.major, i, ok = parseUintAt(s, i); !ok {
		return v, false
	}
	v.parts = 1
	if i < len(s) && s[i] == '.' {
		if v.minor, i, ok = parseUintAt(s, i+1); !ok {
			return v, false
		}
		v.parts = 2
		if i < len(s) && s[i] == '.' {
			if v.patch, i, ok = parseUintAt(s, i+1); !ok {
				return v, false
			}
			v.parts = 3
		}
	}
	if i < len(s) && s[i] == '-' {
		j := i + 1
		for j < len(s) && s[j] != '+' {
			j++
		}
		v.pre = s[i+1 : j]
		if !validIdentifiers(v.pre, true) {
			return v, false
		}
		i = j
	}
	if i < len(s) && s[i] == '+' {
		v.meta = s[i+1:]
		if !validIdentifiers(v.meta, false) {
			return v, false
		}
		i = len(s)
	}
	return v, i == len(s)
}

// parseUintAt parses a run of at least one decimal digit at s[i:] and returns
// its value and the index after it. It fails on overflow of uint64, as
// strconv.ParseUint does in the library.
func parseUintAt(s string, i int) (uint64, int, bool) {
	start := i
	var n uint64
	overflow := false
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		d := uint64(s[i] - '0')
		if n > (1<<64-1-d)/10 {
			overflow = true
		}
		n = n*10 + d
		i++
	}
	return n, i, i > start && !overflow
}

// validIdentifiers reports whether s is a dot-separated list of non-empty
// identifiers of [0-9A-Za-z-]; with noLeadingZero, all-digit identifiers must
// not start with 0 (unless "0").
func validIdentifiers(s string, noLeadingZero bool) bool {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if !isIdentChar(s[i]) {
				return false
			}
			continue
		}
		part := s[start:i]
		if part == "" {
			return false
		}
		if noLeadingZero && len(part) > 1 && part[0] == '0' && allDigits(part) {
			return false
		}
		start = i + 1
	}
	return true
}

func isIdentChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-'
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

// compare mirrors semver.(*Version).Compare: -1, 0 or 1. Build metadata is
// ignored; a pre-release ranks below the same version without one.
func (v *version) compare(o *version) int {
	if d := cmpUint(v.major, o.major); d != 0 {
		return d
	}
	if d := cmpUint(v.minor, o.minor); d != 0 {
		return d
	}
	if d := cmpUint(v.patch, o.patch); d != 0 {
		return d
	}
	switch {
	case v.pre == "" && o.pre == "":
		return 0
	case v.pre == "":
		return 1
	case o.pre == "":
		return -1
	}
	return comparePrerelease(v.pre, o.pre)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// comparePrerelease mirrors the library's function of the same name: it
// compares dot-separated parts pairwise, a missing part counting as "".
func comparePrerelease(a, b string) int {
	for {
		ap, arest, amore := cutDot(a)
		bp, brest, bmore := cutDot(b)
		if d := comparePrePart(ap, bp); d != 0 {
			return d
		}
		if !amore && !bmore {
			return 0
		}
		a, b = arest, brest
	}
}

// cutDot splits s at its first dot. more reports whether a part follows; an
// exhausted side keeps yielding "" (like the library's placeholder).
func cutDot(s string) (part, rest string, more bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// comparePrePart mirrors the library, including its quirks: numbers that
// overflow uint64 compare as strings, and numeric parts rank below
// alphanumeric ones.
func comparePrePart(s, o string) int {
	if s == o {
		return 0
	}
	if s == "" {
		return -1
	}
	if o == "" {
		return 1
	}
	si, sNum := parseUintFull(s)
	oi, oNum := parseUintFull(o)
	switch {
	case !sNum && !oNum:
		if s > o {
			return 1
		}
		return -1
	case !oNum:
		return -1
	case !sNum:
		return 1
	}
	if si > oi {
		return 1
	}
	return -1
}

// parseUintFull is strconv.ParseUint(s, 10, 64) without the error value.
func parseUintFull(s string) (uint64, bool) {
	n, i, ok := parseUintAt(s, 0)
	return n, ok && i == len(s)
}
