package policy

import (
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
)

// versionCorpus mixes valid, coerced and invalid versions, including the
// library's edge cases (leading zeros, overflow, bad pre-release).
var versionCorpus = []string{
	"", "v", "1", "v1", "V1", "1.2", "v1.2", "1.2.3", "v1.2.3", "1.10", "1.10.0", "01.2.3", "1.02.3",
	"1.2.3.4", "1.2.", "1..2", ".1", "1.2.3-", "1.2.3-0", "1.2.3-00", "1.2.3-01", "1.2.3-0a", "1.2.3-alpha",
	"1.2.3-alpha.1", "1.2.3-alpha.beta", "1.2.3-alpha..1", "1.2.3-rc.10", "1.2.3-rc.9", "1.2.3--",
	"1.2.3-a-b", "1.2.3+build", "1.2.3+build.1", "1.2.3+", "1.2.3+a+b", "1.2.3-rc.1+build.5",
	"1.2.3+001", "1-2", "1.2-rc1", "1+meta", "18446744073709551615", "18446744073709551616",
	"1.18446744073709551616", "0.0.0", "0", "00", "v0.0.0-0", "1.2.3-99999999999999999999",
	"1.2.3-18446744073709551616", "1.2.3_4", "1.2.3 ", " 1.2.3", "latest", "main-123-abc", "v1.2.3-rc.1",
	"1.2.3-" + strings.Repeat("a", 260), "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11",
	"1.0.0-rc.1", "1.0.0-1", "1.0.0-a.1.1", "1.0.0-a.1", "1.0.0-a", "1.0.0-x.7.z.92",
}

func TestVersionMatchesMasterminds(t *testing.T) {
	for _, s := range versionCorpus {
		checkVersion(t, s)
	}
	for _, a := range versionCorpus {
		for _, b := range versionCorpus {
			checkCompare(t, a, b)
		}
	}
}

func checkVersion(t *testing.T, s string) {
	t.Helper()
	got, ok := parseVersion(s)
	lv, err := semver.NewVersion(s)
	if ok != (err == nil) {
		t.Fatalf("parseVersion(%q) ok=%v, semver.NewVersion err=%v", s, ok, err)
	}
	if !ok {
		return
	}
	if got.major != lv.Major() || got.minor != lv.Minor() || got.patch != lv.Patch() ||
		got.pre != lv.Prerelease() || got.meta != lv.Metadata() {
		t.Fatalf("parseVersion(%q) = %+v, library says %d.%d.%d-%q+%q",
			s, got, lv.Major(), lv.Minor(), lv.Patch(), lv.Prerelease(), lv.Metadata())
	}
}

func checkCompare(t *testing.T, a, b string) {
	t.Helper()
	va, okA := parseVersion(a)
	vb, okB := parseVersion(b)
	if !okA || !okB {
		return
	}
	la, _ := semver.NewVersion(a)
	lb, _ := semver.NewVersion(b)
	if got, want := va.compare(&vb), la.Compare(lb); got != want {
		t.Fatalf("compare(%q, %q) = %d, library says %d", a, b, got, want)
	}
}

var constraintCorpus = []string{
	"*", "x", "1", "1.x", "1.2.x", "1.2", "1.2.3", "=1.2.3", "v1.2.3", "!=1.2.3", "!=1.x", "!=1.2.x", "!=*",
	">1", ">1.2", ">1.2.3", ">*", "<1", "<1.2", "<1.2.3", ">=1.2.3", "=>1.2", "<=1.2", "=<1.2.3", "<=1.x", "<=*",
	"~1", "~1.2", "~1.2.3", "~>1.2", "~0", "~0.0.0", "~*", "^1", "^1.2", "^1.2.3", "^0.2.3", "^0.2", "^0.0.3",
	"^0.0", "^0", "^*", "^0.x", ">=1.2.3 <2", ">=1.2, <2", "1.2 || >=3", ">=1.2.3-0", ">=1.2.3-0 <2",
	"^1.0.0-0", "~1.2.3-beta", "1.2.3-beta || 2", ">1.2.3-alpha.1", "!=1.2.3-rc.1", "1 - 2", "1.2.3 - 2.3",
	">= 1.2 < 3", "<1.0.0-0", "=1.2.3+build", "~1.2.3+build", ">1.x-beta", "!=1.2.x-rc",
}

var checkVersions = []string{
	"0.0.0", "0.0.1", "0.0.3", "0.0.4", "0.1.0", "0.2.0", "0.2.3", "0.2.9", "0.3.0", "0.9.9", "1", "1.0.0-0",
	"1.0.0-alpha", "1.0.0", "1.1.0", "1.2.0", "1.2.2", "1.2.3-0", "1.2.3-alpha.1", "1.2.3-beta", "1.2.3-rc.1",
	"1.2.3", "1.2.3+build", "1.2.4", "1.2.4-rc.1", "1.3.0", "1.3.0-beta", "1.9.9", "2.0.0-0", "2.0.0-rc.1",
	"2.0.0", "2.3.0", "2.3.1", "3.0.0", "3.1.0-beta", "10.0.0", "v1.2.3", "01.2.3",
}

func TestConstraintMatchesMasterminds(t *testing.T) {
	for _, cs := range constraintCorpus {
		lib, err := semver.NewConstraint(cs)
		if err != nil {
			t.Fatalf("corpus constraint %q: %v", cs, err)
		}
		c, err := parseConstraint(cs)
		if err != nil {
			t.Fatalf("parseConstraint(%q): %v", cs, err)
		}
		if c.groups == nil {
			t.Fatalf("parseConstraint(%q) fell back to the library (normalised %q)", cs, lib.String())
		}
		for _, vs := range checkVersions {
			checkConstraint(t, c, lib, cs, vs)
		}
	}
}

func checkConstraint(t *testing.T, c *constraint, lib *semver.Constraints, cs, vs string) {
	t.Helper()
	v, ok := parseVersion(vs)
	if !ok {
		return
	}
	lv, _ := semver.NewVersion(vs)
	if got, want := c.check(&v, vs), lib.Check(lv); got != want {
		t.Fatalf("constraint %q (normalised %q) on %q: got %v, library says %v", cs, lib.String(), vs, got, want)
	}
}

// TestConstraintFallback covers the path taken if the library's normalised
// form ever stops parsing: checks go to the library itself.
func TestConstraintFallback(t *testing.T) {
	c, err := parseConstraint("~1.2")
	if err != nil {
		t.Fatal(err)
	}
	c.groups = nil
	for vs, want := range map[string]bool{"1.2.5": true, "1.3.0": false, "1.2.5-rc.1": false} {
		v, _ := parseVersion(vs)
		if got := c.check(&v, vs); got != want {
			t.Errorf("fallback check(%q) = %v, want %v", vs, got, want)
		}
	}
	if _, err := compileConstraint(">=1.2 garbage!"); err == nil {
		t.Error("compileConstraint accepted an item it cannot read")
	}
}

// The pre-release rule is Masterminds' default: a pre-release is a candidate
// only when the constraint (its "||" group) names a pre-release.
func TestPrereleaseRule(t *testing.T) {
	for _, tc := range []struct {
		cons, ver string
		want      bool
	}{
		{"^1", "1.3.0-rc.1", false},
		{">=1.2.3", "1.3.0-rc.1", false},
		{"*", "1.0.0-0", false},
		{">=1.2.3-0", "1.3.0-rc.1", true},
		{">=1.2.3-0", "1.2.3-alpha", true},
		{">=1.2.3-0 <2", "2.0.0-rc.1", true}, // 2.0.0-rc.1 < 2.0.0, as the library says
		{"^1.0.0-0", "1.5.0-beta", true},
		{"1.2.3-beta || ^2", "2.1.0-rc.1", false}, // the pre-release opt-in is per "||" group
		{"1.2.3-beta || ^2", "1.2.3-beta", true},
	} {
		c, err := parseConstraint(tc.cons)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := parseVersion(tc.ver)
		if got := c.check(&v, tc.ver); got != tc.want {
			t.Errorf("%q admits %q = %v, want %v", tc.cons, tc.ver, got, tc.want)
		}
	}
}
