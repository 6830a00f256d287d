package policy

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at is t0 plus h hours; now in these tests is at(100).
func at(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

var now = at(100)

// tags makes candidates without build times.
func tags(ts ...string) []Candidate {
	cs := make([]Candidate, len(ts))
	for i, t := range ts {
		cs[i] = Candidate{Tag: t, Digest: "sha256:" + t}
	}
	return cs
}

// built makes a candidate built at at(h).
func built(tag string, h int) Candidate {
	return Candidate{Tag: tag, Digest: "sha256:" + tag, Created: at(h)}
}

func cur(tag string) Candidate { return Candidate{Tag: tag} }

type selectCase struct {
	name    string
	spec    string
	cands   []Candidate
	current Candidate
	want    string // "" with wantErr
	changed bool
	wantErr error
	missing []string
	young   []string
	reason  string // fragment of Reason
}

func runSelectCases(t *testing.T, cases []selectCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			// The answer must not depend on the candidates' order.
			orders := [][]Candidate{tc.cands, reversed(tc.cands)}
			rng := rand.New(rand.NewPCG(1, 2))
			for range 3 {
				s := slices.Clone(tc.cands)
				rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
				orders = append(orders, s)
			}
			for i, cands := range orders {
				res, err := p.Select(cands, tc.current, now)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("order %d: err = %v, want %v (result %+v)", i, err, tc.wantErr, res)
					}
				} else if err != nil {
					t.Fatalf("order %d: %v", i, err)
				}
				if res.Tag != tc.want || res.Changed != tc.changed {
					t.Fatalf("order %d: got %q changed=%v (%s), want %q changed=%v", i, res.Tag, res.Changed, res.Reason, tc.want, tc.changed)
				}
				if i == 0 {
					if !slices.Equal(res.MissingBuildTime, tc.missing) {
						t.Errorf("MissingBuildTime = %q, want %q", res.MissingBuildTime, tc.missing)
					}
					if !slices.Equal(res.TooYoung, tc.young) {
						t.Errorf("TooYoung = %q, want %q", res.TooYoung, tc.young)
					}
					if !strings.Contains(res.Reason, tc.reason) {
						t.Errorf("Reason %q does not say %q", res.Reason, tc.reason)
					}
					if res.Changed && res.Digest != "sha256:"+res.Tag {
						t.Errorf("Digest = %q, want the chosen candidate's", res.Digest)
					}
				}
			}
		})
	}
}

func reversed(cs []Candidate) []Candidate {
	s := slices.Clone(cs)
	slices.Reverse(s)
	return s
}

// Flux v1 behaviour, kept exactly.
func TestSelectFluxV1(t *testing.T) {
	runSelectCases(t, []selectCase{
		{name: "glob newest build", spec: "glob:develop-v*",
			cands: []Candidate{built("develop-v1.8.0", 1), built("develop-v1.8.1", 3), built("develop-v1.7.9", 2), built("master-x", 9)},
			want:  "develop-v1.8.1", changed: true, reason: "by build time"},
		{name: "no prefix is a glob", spec: "develop-v*",
			cands: []Candidate{built("develop-v1.8.0", 1), built("develop-v1.8.1", 3)}, current: cur("develop-v1.8.0"),
			want: "develop-v1.8.1", changed: true, reason: "ranks above current tag develop-v1.8.0"},
		{name: "glob star skips latest", spec: "glob:*",
			cands: []Candidate{built("latest", 50), built("v1", 1)}, want: "v1", changed: true},
		{name: "no prefix star skips latest", spec: "*",
			cands: []Candidate{built("LATEST", 50), built("Latest", 40), built("v1", 1)}, want: "v1", changed: true},
		{name: "glob:latest chooses latest", spec: "glob:latest",
			cands: tags("latest", "v1", "Latest"), want: "latest", changed: true},
		{name: "latest with no prefix chooses latest", spec: "latest",
			cands: tags("latest", "v1"), want: "latest", changed: true},
		{name: "glob:latest keeps latest", spec: "glob:latest",
			cands: tags("latest"), current: cur("latest"), want: "latest", reason: "is the best candidate"},
		{name: "glob lat* skips latest", spec: "glob:lat*",
			cands: []Candidate{built("latest", 5)}, wantErr: ErrNoMatch},
		{name: "regex skips latest", spec: "regex:^latest$",
			cands: []Candidate{built("latest", 5)}, wantErr: ErrNoMatch},
		{name: "regex is unanchored", spec: "regex:rc",
			cands: []Candidate{built("v1-rc2", 5), built("v1", 9), built("rc1-build", 3)}, want: "v1-rc2", changed: true},
		{name: "regexp prefix", spec: "regexp:^v1-",
			cands: []Candidate{built("v1-a", 5), built("xv1-b", 9)}, want: "v1-a", changed: true},
		{name: "semver highest", spec: "semver:~1.2",
			cands: tags("1.2.0", "1.2.10", "1.2.9", "1.3.0", "v1.2.11-rc.1", "junk", "latest"),
			want:  "1.2.10", changed: true, reason: "by semver"},
		{name: "semver with and without v", spec: "semver:^1",
			cands: tags("v1.4.0", "1.3.9", "v1.3.10"), want: "v1.4.0", changed: true},
		{name: "semver excludes pre-releases", spec: "semver:>=1.2.3",
			cands: tags("1.2.3", "1.3.0-rc.1", "2.0.0-beta"), want: "1.2.3", changed: true},
		{name: "semver pre-releases when named", spec: "semver:>=1.2.3-0",
			cands: tags("1.2.3", "1.3.0-rc.1", "1.3.0-rc.2"), want: "1.3.0-rc.2", changed: true},
		{name: "semver release beats its pre-release", spec: "semver:>=1.2.3-0",
			cands: tags("1.3.0-rc.2", "1.3.0"), want: "1.3.0", changed: true},
		{name: "1.10.0 over 1.10", spec: "semver:*",
			cands: tags("1.10", "1.10.0", "1.9.9"), want: "1.10.0", changed: true},
		{name: "v1.2.3 over 1.2.3", spec: "semver:*",
			cands: tags("1.2.3", "v1.2.3"), want: "v1.2.3", changed: true},
		{name: "1.2.0 over v1.2 (more components first)", spec: "semver:*",
			cands: tags("v1.2", "1.2.0"), want: "1.2.0", changed: true},
		{name: "1.10 numeric not lexical", spec: "semver:*",
			cands: tags("1.9", "1.10", "1.2"), want: "1.10", changed: true},
		{name: "build metadata tie lexical", spec: "semver:*",
			cands: tags("1.2.3+b", "1.2.3+a"), want: "1.2.3+b", changed: true},
		{name: "created tie smaller tag", spec: "glob:*",
			cands: []Candidate{built("b", 5), built("a", 5), built("c", 4)}, want: "a", changed: true},
	})
}

func TestSelectOrders(t *testing.T) {
	runSelectCases(t, []selectCase{
		{name: "alphabetical asc", spec: "glob:*;order=alphabetical",
			cands: tags("a", "c", "b", "latest"), want: "c", changed: true, reason: "alphabetically"},
		{name: "alphabetical desc", spec: "glob:*;order=alphabetical:desc",
			cands: tags("b", "a", "c"), want: "a", changed: true},
		{name: "alphabetical is bytewise", spec: "glob:*;order=alphabetical",
			cands: tags("Z", "a", "B"), want: "a", changed: true},
		{name: "numerical by extracted ts", spec: `regex:^main-(\d+)-[a-f0-9]+$;order=numerical:$1`,
			cands: tags("main-9-abc", "main-10-def", "main-100-aaa", "main-x-abc", "dev-1000-abc"),
			want:  "main-100-aaa", changed: true, reason: "numerically"},
		{name: "numerical named group desc", spec: `regex:^main-[a-f0-9]+-(?P<ts>\d+)$;order=numerical:$ts:desc`,
			cands: tags("main-abc-300", "main-def-20", "main-aaa-100"), want: "main-def-20", changed: true},
		{name: "numerical long numbers exact", spec: `regex:^b(\d+)$;order=numerical:${1}`,
			cands: tags("b100000000000000000001", "b100000000000000000000", "b99999999999999999999"),
			want:  "b100000000000000000001", changed: true},
		{name: "numerical whole tag", spec: "glob:*;order=numerical",
			cands: tags("10", "9", "-20", "1.5", "x", "010"), want: "10", changed: true},
		{name: "numerical equal values tie on tag", spec: "glob:*;order=numerical",
			cands: tags("10", "10.0", "010"), want: "10.0", changed: true},
		{name: "numerical negative and fractions", spec: "glob:*;order=numerical:desc",
			cands: tags("-1.5", "-1.25", "0", "-0"), want: "-1.5", changed: true},
		{name: "semver of extracted part", spec: `regex:^app-(v?\d+\.\d+\.\d+)$;order=semver:$1`,
			cands: tags("app-1.2.3", "app-1.10.0", "app-2.0.0-rc.1", "other-9.9.9"), want: "app-1.10.0", changed: true},
		{name: "semver of extracted part with range", spec: `regex:^app-(.+)$;order=semver:$1;range=~1.2`,
			cands: tags("app-1.2.3", "app-1.10.0", "app-1.2.9"), want: "app-1.2.9", changed: true},
		{name: "semver from two groups", spec: `regex:^r(\d+)_(\d+)$;order=semver:$1.$2`,
			cands: tags("r1_9", "r1_10", "r2_0", "r2_x"), want: "r2_0", changed: true},
		{name: "glob with semver order", spec: "glob:v*;order=semver;range=^1",
			cands: tags("v1.2.3", "v1.10.0", "v2.0.0", "1.99.0"), want: "v1.10.0", changed: true},
		{name: "semver filter by build time", spec: "semver:^1;order=created",
			cands: []Candidate{built("1.2.0", 9), built("1.3.0", 5), built("2.0.0", 10)}, want: "1.2.0", changed: true},
		{name: "exclusions", spec: "glob:*;exclude=*.sig,*-debug",
			cands: []Candidate{built("sha256-x.sig", 9), built("v2-debug", 8), built("v2", 7)}, want: "v2", changed: true},
		{name: "exclusions on semver", spec: "semver:^1;exclude=1.3.0",
			cands: tags("1.3.0", "1.2.0"), want: "1.2.0", changed: true},
		{name: "template group that did not participate", spec: `regex:^(a(\d+))?b$;order=alphabetical:$2`,
			cands: tags("b", "a1b", "a2b"), want: "a2b", changed: true},
	})
}

func TestSelectBuildTimes(t *testing.T) {
	runSelectCases(t, []selectCase{
		{name: "missing build time does not block", spec: "glob:v*",
			cands: []Candidate{{Tag: "v3"}, built("v1", 1), built("v2", 2), {Tag: "x"}},
			want:  "v2", changed: true, missing: []string{"v3"}},
		{name: "all missing build time", spec: "glob:v*",
			cands: tags("v1", "v2"), wantErr: ErrNoMatch, missing: []string{"v1", "v2"}, reason: "2 pass but have no build time"},
		{name: "min-age", spec: "glob:v*;min-age=10h",
			cands: []Candidate{built("v1", 80), built("v2", 95), built("v3", 99), {Tag: "v4"}},
			want:  "v1", changed: true, young: []string{"v2", "v3"}, missing: []string{"v4"}},
		{name: "min-age exact boundary is old enough", spec: "glob:v*;min-age=10h",
			cands: []Candidate{built("v1", 80), built("v2", 90)}, want: "v2", changed: true},
		{name: "min-age with semver", spec: "semver:^1;min-age=1d",
			cands: []Candidate{built("1.0.0", 10), built("1.1.0", 90), built("1.2.0", 50)}, want: "1.2.0", changed: true, young: []string{"1.1.0"}},
		{name: "min-age all too young", spec: "semver:^1;min-age=1d",
			cands: []Candidate{built("1.1.0", 90)}, wantErr: ErrNoMatch, young: []string{"1.1.0"}, reason: "younger than min-age 24h0m0s"},
		{name: "min-age all too young keeps current", spec: "semver:^1;min-age=1d",
			cands: []Candidate{built("1.1.0", 90)}, current: cur("1.0.0"), want: "1.0.0", young: []string{"1.1.0"}},
		{name: "semver needs no build time", spec: "semver:^1",
			cands: tags("1.0.0", "1.1.0"), want: "1.1.0", changed: true},
		{name: "literal glob needs no build time", spec: "glob:stable",
			cands: tags("stable", "other"), want: "stable", changed: true},
	})
}

func TestSelectNoDowngrade(t *testing.T) {
	runSelectCases(t, []selectCase{
		{name: "current is best", spec: "semver:^1",
			cands: tags("1.0.0", "1.2.0", "1.1.0"), current: cur("1.2.0"), want: "1.2.0", reason: "is the best candidate"},
		{name: "current above all and absent", spec: "semver:^1",
			cands: tags("1.0.0", "1.1.0"), current: cur("1.5.0"), want: "1.5.0", reason: "ranks at or above the best candidate 1.1.0"},
		{name: "current absent, newer exists", spec: "semver:^1",
			cands: tags("1.0.0", "1.6.0"), current: cur("1.5.0"), want: "1.6.0", changed: true},
		{name: "current outside the range is still a version", spec: "semver:~1.2",
			cands: tags("1.2.9"), current: cur("1.3.0"), want: "1.2.9", changed: true, reason: "does not pass the policy"},
		{name: "tie keeps current 1.10 vs 1.10.0", spec: "semver:*",
			cands: tags("1.10", "1.10.0"), current: cur("1.10"), want: "1.10"},
		{name: "tie keeps current v-prefix", spec: "semver:*",
			cands: tags("v1.2.3"), current: cur("1.2.3"), want: "1.2.3"},
		{name: "created: current newer than candidates", spec: "glob:dev-*",
			cands: []Candidate{built("dev-a", 5), built("dev-b", 10)}, current: built("dev-c", 20), want: "dev-c"},
		{name: "created: current time from candidates", spec: "glob:dev-*",
			cands: []Candidate{built("dev-a", 5), built("dev-c", 20), built("dev-b", 10)}, current: cur("dev-c"), want: "dev-c"},
		{name: "created: equal build time keeps current", spec: "glob:dev-*",
			cands: []Candidate{built("dev-a", 20), built("dev-c", 20)}, current: cur("dev-c"), want: "dev-c"},
		{name: "created: newer candidate", spec: "glob:dev-*",
			cands: []Candidate{built("dev-a", 5), built("dev-c", 20), built("dev-d", 21)}, current: cur("dev-c"), want: "dev-d", changed: true},
		{name: "created: absent current with known time", spec: "glob:dev-*",
			cands: []Candidate{built("dev-a", 5)}, current: built("dev-gone", 9), want: "dev-gone"},
		{name: "created: absent current with known time, newer candidate", spec: "glob:dev-*",
			cands: []Candidate{built("dev-a", 5), built("dev-b", 12)}, current: built("dev-gone", 9), want: "dev-b", changed: true, reason: "ranks above current tag dev-gone"},
		// A deployed tag deleted from the registry, whose build time nobody remembers:
		// moving to the best remaining tag could be a downgrade, so it is kept.
		{name: "created: absent current, unknown time", spec: "glob:dev-*",
			cands: []Candidate{built("dev-a", 5)}, current: cur("dev-gone"), want: "dev-gone", reason: "gone from the registry and its build time is unknown"},
		{name: "created: absent current, unknown time, no candidate", spec: "regex:^dev-",
			current: cur("dev-gone"), want: "dev-gone", reason: "release a tag by hand"},
		{name: "created: absent current, unknown time, min-age", spec: "glob:dev-*;min-age=2h",
			cands: []Candidate{built("dev-a", 5), built("dev-b", 99)}, current: cur("dev-gone"), want: "dev-gone", young: []string{"dev-b"}},
		{name: "semver: absent current needs no build time", spec: "semver:^1;min-age=1h",
			cands: []Candidate{built("1.0.0", 5), built("1.2.0", 6)}, current: cur("1.1.0"), want: "1.2.0", changed: true},
		{name: "literal glob: absent current is ranked without a time", spec: "glob:stable",
			current: cur("stable"), want: "stable", reason: "no candidate passes"},
		{name: "created: present current, unknown time", spec: "glob:dev-*",
			cands: []Candidate{built("dev-a", 5), {Tag: "dev-c"}}, current: cur("dev-c"), want: "dev-c", missing: []string{"dev-c"}, reason: "cannot be shown to be newer"},
		{name: "current on another line moves", spec: "glob:dev-*",
			cands: []Candidate{built("dev-a", 5), built("main-z", 50)}, current: built("main-z", 50), want: "dev-a", changed: true},
		{name: "current latest moves", spec: "glob:*",
			cands: []Candidate{built("v1", 5), built("latest", 50)}, current: built("latest", 50), want: "v1", changed: true},
		{name: "excluding the current release rolls back", spec: "semver:^1;exclude=1.3.0",
			cands: tags("1.2.0", "1.3.0"), current: cur("1.3.0"), want: "1.2.0", changed: true},
		{name: "nothing matches keeps admitted current", spec: "semver:^1",
			cands: tags("junk"), current: cur("1.0.0"), want: "1.0.0", reason: "no candidate passes"},
		{name: "nothing matches and current does not pass", spec: "semver:^1",
			cands: tags("junk"), current: cur("2.0.0"), wantErr: ErrNoMatch, reason: "current tag 2.0.0 does not pass"},
		{name: "empty candidates", spec: "glob:*", wantErr: ErrNoMatch},
		{name: "empty tag is never a candidate", spec: "glob:*;order=alphabetical", cands: tags(""), wantErr: ErrNoMatch},
		{name: "numerical keeps higher current", spec: `regex:^main-(\d+)$;order=numerical:$1`,
			cands: tags("main-5", "main-7"), current: cur("main-9"), want: "main-9"},
		{name: "numerical desc keeps lower current", spec: `regex:^main-(\d+)$;order=numerical:$1:desc`,
			cands: tags("main-5", "main-7"), current: cur("main-2"), want: "main-2"},
		{name: "alphabetical moves up", spec: "glob:r*;order=alphabetical",
			cands: tags("ra", "rc"), current: cur("rb"), want: "rc", changed: true},
	})
}

func TestSelectErrors(t *testing.T) {
	p, err := Parse("glob:*;min-age=1h")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Select([]Candidate{built("v1", 1)}, Candidate{}, time.Time{}); err == nil || errors.Is(err, ErrNoMatch) {
		t.Errorf("min-age with zero now: err = %v, want a caller error", err)
	}
	p, _ = Parse("semver:^9")
	res, err := p.Select(tags("1.0.0"), Candidate{}, now)
	if !errors.Is(err, ErrNoMatch) || res.Tag != "" || res.Changed {
		t.Errorf("got %+v, %v; want ErrNoMatch and no tag", res, err)
	}
	if !strings.Contains(err.Error(), `"semver:^9"`) {
		t.Errorf("error %q does not name the policy", err)
	}
}

func TestLiteral(t *testing.T) {
	for spec, want := range map[string]string{
		"glob:latest": "latest", "stable": "stable", "glob:stable;exclude=x": "stable",
		"glob:stable;exclude=st*": "", "glob:v*": "", `glob:a\*`: "", "semver:1.0.0": "", "regex:^stable$": "",
	} {
		p, err := Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := p.Literal(); got != want || ok != (want != "") {
			t.Errorf("%s: Literal() = %q, %v; want %q", spec, got, ok, want)
		}
	}
}

func TestFilterAndMatch(t *testing.T) {
	for _, tc := range []struct {
		spec string
		in   []string
		want []string
	}{
		{"glob:v*", []string{"v1", "latest", "x", "v2"}, []string{"v1", "v2"}},
		{"glob:latest", []string{"v1", "latest", "LATEST"}, []string{"latest"}},
		{"semver:~1.2", []string{"1.2.0", "1.3.0", "v1.2.5", "1.2.6-rc.1", "x"}, []string{"1.2.0", "v1.2.5"}},
		{`regex:^main-(\d+)$;order=numerical:$1;exclude=main-0`, []string{"main-0", "main-1", "main-x"}, []string{"main-1"}},
		{`regex:^m-(.*)$;order=numerical:$1`, []string{"m-1", "m-", "m-1.5", "m-a"}, []string{"m-1", "m-1.5"}},
	} {
		p, err := Parse(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Filter(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Filter = %q, want %q", tc.spec, got, tc.want)
		}
		for _, tag := range tc.in {
			if p.Match(tag) != slices.Contains(tc.want, tag) {
				t.Errorf("%s: Match(%q) disagrees with Filter", tc.spec, tag)
			}
		}
	}
}
