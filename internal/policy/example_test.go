package policy_test

import (
	"errors"
	"fmt"
	"time"

	"imagebot.dev/imagebot/internal/policy"
)

var exampleNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func hoursAgo(h int) time.Time { return exampleNow.Add(-time.Duration(h) * time.Hour) }

// The Flux v1 annotation flux.weave.works/tag.flask: glob:develop-v* picks
// the newest build among matching tags.
func ExamplePolicy_Select_glob() {
	p, err := policy.Parse("glob:develop-v*")
	if err != nil {
		panic(err)
	}
	tags := []policy.Candidate{
		{Tag: "develop-v1.8.0", Created: hoursAgo(30)},
		{Tag: "develop-v1.8.1", Created: hoursAgo(2)},
		{Tag: "master-v9", Created: hoursAgo(1)},
		{Tag: "latest", Created: hoursAgo(1)},
		{Tag: "develop-v1.9.0-wip"}, // no build time known: skipped and reported
	}
	res, err := p.Select(tags, policy.Candidate{Tag: "develop-v1.8.0"}, exampleNow)
	fmt.Println(res.Tag, res.Changed, err)
	fmt.Println(res.Reason)
	fmt.Println("missing build time:", res.MissingBuildTime)
	// Output:
	// develop-v1.8.1 true <nil>
	// develop-v1.8.1 ranks above current tag develop-v1.8.0 by build time
	// missing build time: [develop-v1.9.0-wip]
}

// semver: takes Masterminds constraints; pre-releases only when the
// constraint names one; between equal versions the explicit one wins.
func ExamplePolicy_Select_semver() {
	tags := []policy.Candidate{{Tag: "1.2.9"}, {Tag: "v1.3.0"}, {Tag: "1.10"}, {Tag: "1.10.0"}, {Tag: "1.11.0-rc.1"}, {Tag: "2.0.0"}}
	for _, spec := range []string{"semver:~1.2", "semver:^1", "semver:>=1.2.3-0 <2"} {
		p, err := policy.Parse(spec)
		if err != nil {
			panic(err)
		}
		res, _ := p.Select(tags, policy.Candidate{}, exampleNow)
		fmt.Printf("%-22s %s\n", spec, res.Tag)
	}
	// Output:
	// semver:~1.2            1.2.9
	// semver:^1              1.10.0
	// semver:>=1.2.3-0 <2    1.11.0-rc.1
}

// Flux v2's filterTags.pattern + extract with a numerical policy, with
// exclusions and a minimum age, in one annotation value.
func ExamplePolicy_Select_extract() {
	p, err := policy.Parse(`regex:^main-(?P<ts>\d+)-[0-9a-f]+$;order=numerical:$ts;exclude=*-debug;min-age=1h`)
	if err != nil {
		panic(err)
	}
	tags := []policy.Candidate{
		{Tag: "main-1700000000-abc1234", Created: hoursAgo(48)},
		{Tag: "main-1700500000-def5678", Created: hoursAgo(5)},
		{Tag: "main-1700900000-0123abc", Created: exampleNow.Add(-10 * time.Minute)}, // just pushed
		{Tag: "main-1700600000-fff0000-debug", Created: hoursAgo(4)},
		{Tag: "pr-42", Created: hoursAgo(3)},
	}
	fmt.Println("needs build times:", p.NeedsBuildTime())
	fmt.Println("fetch metadata for:", p.Filter([]string{"main-1700000000-abc1234", "pr-42", "main-1700600000-fff0000-debug"}))
	res, err := p.Select(tags, policy.Candidate{Tag: "main-1700000000-abc1234"}, exampleNow)
	fmt.Println(res.Tag, res.Changed, err)
	fmt.Println("too young:", res.TooYoung)
	// Output:
	// needs build times: true
	// fetch metadata for: [main-1700000000-abc1234]
	// main-1700500000-def5678 true <nil>
	// too young: [main-1700900000-0123abc]
}

// The deployed tag is never downgraded: if it ranks at or above every
// candidate (even when the registry no longer lists it), it is kept.
func ExamplePolicy_Select_keep() {
	p, _ := policy.Parse("semver:^1")
	res, err := p.Select([]policy.Candidate{{Tag: "1.4.0"}, {Tag: "1.5.0"}}, policy.Candidate{Tag: "1.6.0"}, exampleNow)
	fmt.Println(res.Tag, res.Changed, err)
	fmt.Println(res.Reason)
	// Output:
	// 1.6.0 false <nil>
	// keeping current tag 1.6.0: it ranks at or above the best candidate 1.5.0 by semver
}

// Ordering alphabetically, Flux v2 style: asc (the default) picks the
// greatest, desc the least.
func ExamplePolicy_Select_alphabetical() {
	tags := []policy.Candidate{{Tag: "rel-b"}, {Tag: "rel-c"}, {Tag: "rel-a"}, {Tag: "x.sig"}}
	for _, spec := range []string{"glob:*;order=alphabetical;exclude=*.sig", "glob:*;order=alphabetical:desc"} {
		p, _ := policy.Parse(spec)
		res, _ := p.Select(tags, policy.Candidate{}, exampleNow)
		fmt.Println(res.Tag)
	}
	// Output:
	// rel-c
	// rel-a
}

// Nothing to run is an error callers branch on with errors.Is.
func ExamplePolicy_Select_noMatch() {
	p, _ := policy.Parse("semver:~3.0")
	_, err := p.Select([]policy.Candidate{{Tag: "1.0.0"}, {Tag: "latest"}}, policy.Candidate{}, exampleNow)
	fmt.Println(errors.Is(err, policy.ErrNoMatch))
	fmt.Println(err)
	// Output:
	// true
	// policy "semver:~3.0": no tag matches the policy: no candidate passes the policy
}

// Invalid specs are errors that quote the spec; they never match everything.
func ExampleParse_invalid() {
	for _, spec := range []string{
		"regex:^main-(",
		"semver:~1.2.x.y",
		"globb:*",
		"glob:*;order=numerical:$1",
		"glob:*;min-age=soon",
		`regex:^a;b$`,
	} {
		_, err := policy.Parse(spec)
		fmt.Println(errors.Is(err, policy.ErrInvalid), err)
	}
	// Output:
	// true invalid policy "regex:^main-(": regex: error parsing regexp: missing closing ): `^main-(`
	// true invalid policy "semver:~1.2.x.y": semver constraint "~1.2.x.y": improper constraint: "~1.2.x.y"
	// true invalid policy "globb:*": unknown prefix "globb:" (want glob:, semver:, regex: or regexp:, in lower case)
	// true invalid policy "glob:*;order=numerical:$1": order numerical:$1: a template needs a regex filter to take groups from
	// true invalid policy "glob:*;min-age=soon": min-age: bad duration "soon" (e.g. 90m, 1h30m, 7d, 1d12h)
	// true invalid policy "regex:^a;b$": option "b$": want name=value
}

// A regex that needs ";" escapes it; the backslash stays, and RE2 reads "\;"
// as a literal ";".
func ExampleParse_escaping() {
	p, err := policy.Parse(`regex:^build\;(\d+)$;order=numerical:$1`)
	fmt.Println(err)
	fmt.Println(p.Filter([]string{"build;7", "build;x", "build7"}))
	// Output:
	// <nil>
	// [build;7]
}
