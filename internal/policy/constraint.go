package policy

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// constraint is a Masterminds/semver v3 constraint compiled for checking
// without allocation. Parsing and validation are the library's
// (semver.NewConstraint); the compiled form is read back from the library's
// normalised String() ("op+version" items, " " between ANDs, " || " between
// ORs) and evaluated by a mirror of the library's check functions, because the
// library builds an error value (fmt.Errorf) for every version that fails a
// check. TestConstraintMatchesMasterminds and FuzzConstraint hold the mirror
// to the library.
type constraint struct {
	lib    *semver.Constraints
	groups []conGroup // nil: use lib (fallback, never expected)
}

type conGroup struct {
	items      []conItem
	includePre bool // the group names a pre-release: pre-releases are candidates
}

type conItem struct {
	op                            conOp
	con                           version
	dirty, minorDirty, patchDirty bool
}

type conOp uint8

const (
	opTildeOrEqual conOp = iota // "", "="
	opNotEqual                  // "!="
	opGreater                   // ">"
	opLess                      // "<"
	opGreaterEqual              // ">=", "=>"
	opLessEqual                 // "<=", "=<"
	opTilde                     // "~", "~>"
	opCaret                     // "^"
)

var conOps = map[string]conOp{
	"": opTildeOrEqual, "=": opTildeOrEqual, "!=": opNotEqual, ">": opGreater, "<": opLess,
	">=": opGreaterEqual, "=>": opGreaterEqual, "<=": opLessEqual, "=<": opLessEqual,
	"~": opTilde, "~>": opTilde, "^": opCaret,
}

// conItemRe is the library's single-constraint grammar (same groups): 1 op,
// 2 version, 3 major, 4 .minor, 5 .patch, 6 -pre.
var conItemRe = regexp.MustCompile(`^\s*(=||!=|>|<|>=|=>|<=|=<|~|~>|\^)\s*` +
	`(v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?` +
	`(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?` +
	`(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?)\s*$`)

// parseConstraint parses a Masterminds constraint such as "~1.2", "^1",
// ">=1.2.3 <2", "1.x" or "1.2 || >=3".
func parseConstraint(s string) (*constraint, error) {
	lib, err := semver.NewConstraint(s)
	if err != nil {
		return nil, err
	}
	c := &constraint{lib: lib}
	c.groups, _ = compileConstraint(lib.String())
	return c, nil
}

// compileConstraint reads the library's normalised form. It fails only if the
// library's String() changes shape; the caller then falls back to lib.Check.
func compileConstraint(norm string) ([]conGroup, error) {
	var groups []conGroup
	for _, g := range strings.Split(norm, " || ") {
		var cg conGroup
		for _, item := range strings.Split(g, " ") {
			ci, err := compileItem(item)
			if err != nil {
				return nil, err
			}
			if ci.con.pre != "" {
				cg.includePre = true
			}
			cg.items = append(cg.items, ci)
		}
		groups = append(groups, cg)
	}
	return groups, nil
}

// compileItem mirrors the library's parseConstraint: an "x", "X" or "*"
// component (or a missing one) makes the constraint "dirty" at that level.
func compileItem(item string) (conItem, error) {
	m := conItemRe.FindStringSubmatch(item)
	if m == nil {
		return conItem{}, fmt.Errorf("unexpected constraint item %q", item)
	}
	op, ok := conOps[m[1]]
	if !ok {
		return conItem{}, fmt.Errorf("unexpected operator %q", m[1])
	}
	ci := conItem{op: op}
	ver := m[2]
	switch {
	case isX(m[3]) || m[3] == "":
		ver = "0.0.0" + m[6]
		ci.dirty = true
	case isX(strings.TrimPrefix(m[4], ".")) || m[4] == "":
		ver = m[3] + ".0.0" + m[6]
		ci.dirty, ci.minorDirty = true, true
	case isX(strings.TrimPrefix(m[5], ".")) || m[5] == "":
		ver = m[3] + m[4] + ".0" + m[6]
		ci.dirty, ci.patchDirty = true, true
	}
	lv, err := semver.NewVersion(ver)
	if err != nil {
		return conItem{}, fmt.Errorf("constraint version %q: %w", ver, err)
	}
	ci.con = version{major: lv.Major(), minor: lv.Minor(), patch: lv.Patch(), pre: lv.Prerelease(), meta: lv.Metadata()}
	return ci, nil
}

func isX(s string) bool { return s == "x" || s == "X" || s == "*" }

// check reports whether v satisfies the constraint (semver.Constraints.Check).
func (c *constraint) check(v *version, raw string) bool {
	if c.groups == nil {
		lv, err := semver.NewVersion(raw)
		return err == nil && c.lib.Check(lv)
	}
	for gi := range c.groups {
		g := &c.groups[gi]
		ok := true
		for ii := range g.items {
			if !g.items[ii].check(v, g.includePre) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// check mirrors the library's constraint functions, returning only the bool.
func (c *conItem) check(v *version, includePre bool) bool {
	if v.pre != "" && !includePre {
		return false
	}
	con := &c.con
	switch c.op {
	case opNotEqual:
		if c.dirty {
			if con.major != v.major {
				return true
			}
			if con.minor != v.minor && !c.minorDirty {
				return true
			} else if c.minorDirty {
				return false
			} else if con.patch != v.patch && !c.patchDirty {
				return true
			} else if c.patchDirty {
				if v.pre != "" || con.pre != "" {
					return comparePrerelease(v.pre, con.pre) != 0
				}
				return false
			}
		}
		return v.compare(con) != 0
	case opGreater:
		if !c.dirty {
			return v.compare(con) == 1
		}
		switch {
		case v.major > con.major:
			return true
		case v.major < con.major:
			return false
		case c.minorDirty:
			return false
		case c.patchDirty:
			return v.minor > con.minor
		}
		return v.compare(con) == 1
	case opLess:
		return v.compare(con) < 0
	case opGreaterEqual:
		return v.compare(con) >= 0
	case opLessEqual:
		if !c.dirty {
			return v.compare(con) <= 0
		}
		if v.major > con.major {
			return false
		}
		return !(v.major == con.major && v.minor > con.minor && !c.minorDirty)
	case opTilde:
		return c.tilde(v)
	case opTildeOrEqual:
		if c.dirty {
			return c.tilde(v)
		}
		return v.compare(con) == 0
	case opCaret:
		if v.compare(con) < 0 {
			return false
		}
		if con.major > 0 || c.minorDirty {
			return v.major == con.major
		}
		if v.major > 0 {
			return false
		}
		if con.minor > 0 || c.patchDirty {
			return v.minor == con.minor
		}
		if v.minor > 0 {
			return false
		}
		return con.patch == v.patch
	}
	return false
}

func (c *conItem) tilde(v *version) bool {
	con := &c.con
	if v.compare(con) < 0 {
		return false
	}
	if con.major == 0 && con.minor == 0 && con.patch == 0 && !c.minorDirty && !c.patchDirty {
		return true
	}
	if v.major != con.major {
		return false
	}
	return v.minor == con.minor || c.minorDirty
}
