package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseValid(t *testing.T) {
	for _, tc := range []struct {
		spec     string
		filter   filterKind
		order    orderKind
		desc     bool
		tmpl     string
		exclude  int
		minAge   time.Duration
		needTime bool
	}{
		{spec: "glob:develop-v*", filter: filterGlob, order: orderCreated, needTime: true},
		{spec: "develop-v*", filter: filterGlob, order: orderCreated, needTime: true},
		{spec: "*", filter: filterGlob, order: orderCreated, needTime: true},
		{spec: "glob:latest", filter: filterGlob, order: orderCreated},
		{spec: "latest", filter: filterGlob, order: orderCreated},
		{spec: "glob:v1.2.3", filter: filterGlob, order: orderCreated},
		{spec: "semver:~1.2", filter: filterSemver, order: orderSemver},
		{spec: "semver:>=1.2.3 <2", filter: filterSemver, order: orderSemver},
		{spec: "semver:>=1.2, <2", filter: filterSemver, order: orderSemver},
		{spec: "semver:1.2 || >=3", filter: filterSemver, order: orderSemver},
		{spec: "semver:*", filter: filterSemver, order: orderSemver},
		{spec: "regex:^main-", filter: filterRegex, order: orderCreated, needTime: true},
		{spec: "regexp:^main-", filter: filterRegex, order: orderCreated, needTime: true},
		{spec: `regex:^v\d{1,3}$`, filter: filterRegex, order: orderCreated, needTime: true},
		{spec: `regex:^main-(\d+)-;order=numerical:$1;exclude=*-debug,*.sig;min-age=1h`,
			filter: filterRegex, order: orderNumerical, tmpl: "$1", exclude: 2, minAge: time.Hour, needTime: true},
		{spec: `regex:^main-[a-f0-9]+-(?P<ts>\d+)$;order=numerical:$ts:desc`,
			filter: filterRegex, order: orderNumerical, desc: true, tmpl: "$ts"},
		{spec: `regex:^(\d+)_(\d+)$;order=semver:$1.$2`, filter: filterRegex, order: orderSemver, tmpl: "$1.$2"},
		{spec: `regex:^app-(.+)$;order=semver:${1};range=~1.2`, filter: filterRegex, order: orderSemver, tmpl: "${1}"},
		{spec: "glob:*;order=alphabetical:desc", filter: filterGlob, order: orderAlphabetical, desc: true},
		{spec: "glob:*;order=alphabetical", filter: filterGlob, order: orderAlphabetical},
		{spec: "glob:*;order=alphabetical:asc", filter: filterGlob, order: orderAlphabetical},
		{spec: "glob:*;order=numerical", filter: filterGlob, order: orderNumerical},
		{spec: "glob:v*;order=semver;range=^1", filter: filterGlob, order: orderSemver},
		{spec: "semver:^1;order=created", filter: filterSemver, order: orderCreated, needTime: true},
		{spec: "semver:^1;min-age=7d", filter: filterSemver, order: orderSemver, minAge: 7 * 24 * time.Hour, needTime: true},
		{spec: "glob:*; order=created ;  min-age = 1d12h ", filter: filterGlob, order: orderCreated, minAge: 36 * time.Hour, needTime: true},
		{spec: "glob:*;exclude= *.sig , *.att", filter: filterGlob, order: orderCreated, exclude: 2, needTime: true},
		{spec: `regex:^a\;b$`, filter: filterRegex, order: orderCreated, needTime: true},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			p, err := Parse(tc.spec)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if p.String() != tc.spec {
				t.Errorf("String() = %q, want the spec verbatim", p.String())
			}
			if p.filter != tc.filter || p.order.kind != tc.order || p.order.desc != tc.desc ||
				p.order.tmpl.raw != tc.tmpl || len(p.exclude) != tc.exclude || p.minAge != tc.minAge {
				t.Errorf("got filter=%v order=%v desc=%v tmpl=%q exclude=%d minAge=%v",
					p.filter, p.order.kind, p.order.desc, p.order.tmpl.raw, len(p.exclude), p.minAge)
			}
			if p.NeedsBuildTime() != tc.needTime {
				t.Errorf("NeedsBuildTime() = %v, want %v", p.NeedsBuildTime(), tc.needTime)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct {
		spec, want string // want: a fragment of the error message
	}{
		{"", "empty spec"},
		{"   ", "empty spec"},
		{"glob:", "empty filter"},
		{"semver:", "empty filter"},
		{"regex:", "empty filter"},
		{"regexp:", "empty filter"},
		{"regex:(", "missing closing )"},
		{"regex:a{2,1}", "invalid repeat count"},
		{"semver:~1.2.3.4", "semver constraint"},
		{"semver:not-a-version", "semver constraint"},
		{"semver:>=1.2 <", "semver constraint"},
		{"globb:*", `unknown prefix "globb:"`},
		{"Glob:*", `unknown prefix "Glob:"`},
		{"sha256:*", `unknown prefix "sha256:"`},
		{"glob:[a-", "unterminated"},
		{"glob:[]", "empty class"},
		{"glob:[z-a]", "bad range"},
		{`glob:abc\`, `trailing "\"`},
		{"glob:a]", `unmatched "]"`},
		{"glob: *", "whitespace"},
		{"glob:*;", "empty option"},
		{"glob:*;;order=created", "empty option"},
		{"glob:*;order", "want name=value"},
		{"glob:*;sort=alphabetical", `unknown option "sort"`},
		{"glob:*;order=newest", `unknown order "newest"`},
		{"glob:*;order=", "empty order"},
		{"glob:*;order=created:desc", "no direction"},
		{"glob:*;order=semver:asc", "no direction"},
		{"glob:*;order=alphabetical:sideways", "neither asc, desc nor a template"},
		{"glob:*;order=numerical:$1", "needs a regex filter"},
		{"semver:^1;order=semver:$1", "needs a regex filter"},
		{`regex:^(\d+)$;order=numerical:$2`, `no group "2"`},
		{`regex:^(\d+)$;order=numerical:$ts`, `no group "ts"`},
		{`regex:^(\d+)x$;order=numerical:$1x`, `no group "1x"`},
		{`regex:^(\d+)$;order=numerical:$`, "bad reference"},
		{`regex:^(\d+)$;order=numerical:${}`, "bad reference"},
		{`regex:^(\d+)$;order=numerical:$$`, "references no group"},
		{"glob:*;order=created;order=semver", "given twice"},
		{"glob:*;exclude=", "no patterns"},
		{"glob:*;exclude=*.sig,,*.att", "empty pattern"},
		{"glob:*;exclude=[", "unterminated"},
		{"glob:*;min-age=soon", "bad duration"},
		{"glob:*;min-age=-1h", "not positive"},
		{"glob:*;min-age=0s", "not positive"},
		{"glob:*;min-age=1dd", "bad duration"},
		{"glob:*;min-age=", "empty duration"},
		{"semver:^1;range=^2", "range= applies to order=semver"},
		{"glob:*;range=^2", "range= applies to order=semver"},
		{"glob:*;order=semver;range=", "empty constraint"},
		{"glob:*;order=semver;range=bogus", "range"},
		{`regex:^a;b$`, `want name=value`},
		{`regex:^a\\;b$`, `want name=value`},
		{"glob:" + strings.Repeat("a", MaxSpecLen), "bytes long"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			p, err := Parse(tc.spec)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tc.spec, p)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			quoted := tc.spec
			if len(quoted) > 200 {
				quoted = quoted[:200]
			}
			q := fmt.Sprintf("%q", quoted)
			if !strings.Contains(msg, q[:len(q)-1]) {
				t.Errorf("error %q does not quote the spec", msg)
			}
		})
	}
}

func TestSplitUnescaped(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"a", []string{"a"}},
		{"a;b", []string{"a", "b"}},
		{`a\;b`, []string{`a\;b`}},
		{`a\\;b`, []string{`a\\`, "b"}},
		{`a\\\;b;c`, []string{`a\\\;b`, "c"}},
		{"a;", []string{"a", ""}},
		{";", []string{"", ""}},
	} {
		got := splitUnescaped(tc.in)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("splitUnescaped(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRegexEscapedSemicolon(t *testing.T) {
	p, err := Parse(`regex:^a\;b-(\d+)$;order=numerical:$1`)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Match("a;b-1") || p.Match("a") {
		t.Errorf(`regex with \; should match "a;b-1" only`)
	}
	// A comma inside the regex is part of the regex, not a list separator.
	p, err = Parse(`regex:^v(\d{1,3})$;order=numerical:$1;exclude=v0,v1`)
	if err != nil {
		t.Fatal(err)
	}
	got := p.Filter([]string{"v0", "v1", "v2", "v1000", "v99"})
	if strings.Join(got, ",") != "v2,v99" {
		t.Errorf("Filter = %q, want [v2 v99]", got)
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1h": time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute,
		"7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "1d30m": 24*time.Hour + 30*time.Minute,
		"30s": 30 * time.Second,
	} {
		got, err := parseAge(in)
		if err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestTextMarshaling(t *testing.T) {
	var cfg struct {
		Policy Policy `json:"policy"`
	}
	if err := json.Unmarshal([]byte(`{"policy": "semver:~1.2;exclude=1.2.5"}`), &cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.Policy.Match("1.2.4") || cfg.Policy.Match("1.2.5") {
		t.Errorf("unmarshalled policy does not behave as parsed")
	}
	out, err := json.Marshal(cfg)
	if err != nil || string(out) != `{"policy":"semver:~1.2;exclude=1.2.5"}` {
		t.Errorf("Marshal = %s, %v", out, err)
	}
	err = json.Unmarshal([]byte(`{"policy": "regex:("}`), &cfg)
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Unmarshal of a bad spec: %v, want ErrInvalid", err)
	}
}

// The specs shown in doc.go parse.
func TestDocSpecsParse(t *testing.T) {
	for _, spec := range []string{
		"glob:develop-v*", "semver:~1.2", "semver:>=1.2.3-0 <2",
		`regex:^main-(\d+)-[0-9a-f]+$;order=numerical:$1;exclude=*-debug;min-age=1h`,
		`regex:^main-[0-9a-f]+-(?P<ts>\d+)$;order=numerical:$ts`,
		`regex:^app-(v?\d+\.\d+\.\d+)$;order=semver:$1;range=^2`,
		"glob:*;order=alphabetical:desc", "glob:*;exclude=*.sig,*.att,sha256-*",
		`regex:^v\d{1,3}$`, "semver:>=1.2, <2",
	} {
		if _, err := Parse(spec); err != nil {
			t.Errorf("doc example: %v", err)
		}
	}
}
