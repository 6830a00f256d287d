package policy

import (
	"path"
	"testing"
)

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pat, tag string
		want     bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"develop-v*", "develop-v1.8.0", true},
		{"develop-v*", "develop-v", true},
		{"develop-v*", "xdevelop-v1", false},
		{"*-debug", "1.2-debug", true},
		{"*-debug", "1.2-debug-x", false},
		{"*.sig", "sha256-abc.sig", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbYcZ", false},
		{"a*b*c", "acb", false},
		{"**", "x", true},
		{"v?.?", "v1.2", true},
		{"v?.?", "v1.22", false},
		{"v[0-9].*", "v1.2", true},
		{"v[0-9].*", "vx.2", false},
		{"v[!0-9]*", "vx", true},
		{"v[^0-9]*", "v1", false},
		{"[abc]", "b", true},
		{"[a-c-]", "-", true},
		{"[-a]", "-", true},
		{`[\]]`, "]", true},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{"latest", "latest", true},
		{"latest", "Latest", false},
		{"1.2.3", "1.2.3", true},
		{"1.2.3", "1x2x3", false},
		{"*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	} {
		g, err := compileGlob(tc.pat)
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", tc.pat, err)
		}
		if got := g.match(tc.tag); got != tc.want {
			t.Errorf("glob %q on %q = %v, want %v", tc.pat, tc.tag, got, tc.want)
		}
	}
}

// Where both are defined (no "\", "!" negation or "-" edge cases), the glob
// agrees with path.Match on tag-like strings.
func TestGlobAgreesWithPathMatch(t *testing.T) {
	pats := []string{"*", "a*", "*a", "a*b", "?", "a?c", "[a-c]*", "[^a-c]*", "*[0-9]", "v*.*.*", "*-*-*"}
	tags := []string{"", "a", "abc", "acb", "b1", "v1.2.3", "main-1-abc", "x-y", "zzz9", "a-b-c-d"}
	for _, p := range pats {
		g, err := compileGlob(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range tags {
			want, _ := path.Match(p, s)
			if got := g.match(s); got != want {
				t.Errorf("glob %q on %q = %v, path.Match says %v", p, s, got, want)
			}
		}
	}
}
