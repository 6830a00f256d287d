// Package policy parses the tag filters users write on workloads (the value
// of flux.weave.works/tag.<container> or imagebot.dev/tag.<container>, or a
// config entry) and chooses, among the tags a registry lists, the one a
// container should run. It is pure: no I/O, no clock, no logging.
//
// # Using it
//
//	p, err := policy.Parse("semver:~1.2")   // errors wrap policy.ErrInvalid
//	if p.NeedsBuildTime() {
//		// fetch image configs ("created") for p.Filter(tags) only
//	}
//	res, err := p.Select(candidates, policy.Candidate{Tag: deployed}, now)
//	// err wraps policy.ErrNoMatch when there is nothing to run;
//	// res.Changed: update to res.Tag; otherwise keep; res.Reason says why.
//
// # Syntax
//
// A spec is a filter, optionally followed by options, each after a ";":
//
//	spec    = filter *( ";" option )
//	filter  = "glob:" GLOB | "semver:" CONSTRAINT | "regex:" RE | "regexp:" RE | GLOB
//	option  = "order=" ORDER | "exclude=" GLOB *( "," GLOB ) | "min-age=" AGE
//	        | "range=" CONSTRAINT
//	ORDER   = "created" | "semver" [":" TEMPLATE]
//	        | ("alphabetical" | "numerical") [":" TEMPLATE] [":" ("asc" | "desc")]
//
// The Flux v1 forms keep their exact meaning:
//
//   - glob:PATTERN, or PATTERN with no prefix: the whole tag matches the
//     pattern. "*" matches any run of characters, "?" one character, "[a-z]"
//     one of a set, "[!a-z]" (or "[^a-z]") one not in it, "\x" the character x.
//     (Flux v1 knew only "*"; no valid tag contains "?", "[" or "]", so no
//     Flux v1 spec changes meaning.) Ranked by build time, newest first.
//   - semver:CONSTRAINT: the tag parses as a version (Masterminds/semver v3
//     NewVersion: "v" prefix optional, "1" and "1.2" accepted as 1.0.0 and
//     1.2.0) and satisfies the constraint ("~1.2", "^1", ">=1.2.3 <2",
//     "1.x", "1.2 || >=3"). Pre-releases are candidates only when the
//     constraint names one (">=1.2.3-0"), in that "||" group. Ranked by
//     version, highest first.
//   - regex:RE and regexp:RE: Go RE2 syntax, unanchored as in Flux v1:
//     regex:rc matches "v1-rc2"; write regex:^rc$ for the whole tag. Ranked by
//     build time, newest first.
//   - The tag "latest" (any case) is never chosen, unless the filter is the
//     glob "latest" itself (glob:latest or latest).
//
// Options (whitespace around an option is ignored; each at most once):
//
//   - order=created: rank by build time (the image config's "created"),
//     newest first. The default for glob and regex filters.
//   - order=semver: rank by version, highest first. The default for semver:
//     filters. On a glob or regex filter the tag (or the part a template
//     extracts) must parse as a version and satisfy range=CONSTRAINT, whose
//     default "*" admits any release but no pre-release.
//   - order=alphabetical, order=numerical: rank by bytes, or by decimal value
//     ([+-]digits[.digits], compared exactly at any length). As in Flux v2,
//     "asc" (the default) chooses the greatest and "desc" the least. A tag
//     that is not a number is not a candidate for numerical.
//   - A TEMPLATE ranks by a value extracted from the tag with the regex
//     filter's groups, as Flux v2's filterTags.extract: "$1", "${1}", "$ts",
//     "${ts}", or several, e.g. "$major.$minor". A reference to a group the
//     regex does not have is an error.
//   - exclude=GLOB,GLOB...: drop tags matching any of these globs
//     ("*.sig", "*-debug").
//   - min-age=AGE: only tags built at least AGE before the time given to
//     Select: a Go duration ("90m", "1h30m") optionally led by days ("7d",
//     "1d12h").
//
// Escaping: the filter ends at the first ";" not preceded by a backslash. A
// regex that needs a ";" writes "\;", which RE2 reads as a literal ";" (so
// the backslash is kept); "\\;" is an escaped backslash followed by the
// separator. Commas need no escaping in the filter (regex:^v\d{1,3}$ and
// semver:>=1.2, <2 are fine); in exclude= they always separate patterns (no
// tag contains a comma).
//
// Examples:
//
//	glob:develop-v*                          newest develop-v build
//	semver:~1.2                              highest 1.2.x release
//	semver:>=1.2.3-0 <2                      highest 1.x from 1.2.3, pre-releases too
//	regex:^main-(\d+)-[0-9a-f]+$;order=numerical:$1;exclude=*-debug;min-age=1h
//	                                         greatest build number, an hour old
//	regex:^main-[0-9a-f]+-(?P<ts>\d+)$;order=numerical:$ts
//	                                         Flux v2's main-<sha>-<ts>
//	regex:^app-(v?\d+\.\d+\.\d+)$;order=semver:$1;range=^2
//	                                         highest app-2.x.y
//	glob:*;order=alphabetical:desc           alphabetically first tag
//	glob:*;exclude=*.sig,*.att,sha256-*      newest image, skipping cosign artefacts
//
// Invalid specs (empty, unknown prefix, bad glob, regex or constraint, unknown
// or repeated option, bad duration, template without a regex, ...) are errors
// that wrap ErrInvalid and quote the spec; nothing ever "matches everything"
// by mistake.
//
// # Ranking and ties
//
// Select reads the candidates once and keeps the best so far. Ties on the
// ranked value are broken so that the answer never depends on the order of the
// candidates: by build time, the lexically smaller tag wins (Flux v1); by
// semver, the version written with more components wins ("1.10.0" over
// "1.10"), then the lexically greater tag ("v1.2.3" over "1.2.3", as Flux v1);
// alphabetically and numerically, the lexically greater tag.
//
// # Build times
//
// With order=created or min-age, a candidate whose build time is unknown (zero
// Created) is left out and listed in Result.MissingBuildTime; it does not stop
// the choice among the others. Candidates younger than min-age are listed in
// Result.TooYoung. NeedsBuildTime and Filter tell the scanner which configs
// to fetch.
//
// # No downgrade
//
// The current tag, when it passes the policy, is ranked like a candidate even
// if the registry no longer lists it, and Select keeps it unless a candidate
// ranks strictly above it (a tie keeps it: no churn between "1.10" and
// "1.10.0"). For order=created, pass its build time in the current Candidate
// when the registry no longer has it (imagebot's bot remembers the build times
// of the tags it has seen). When that time is unknown too, Select keeps the
// current tag and its Reason says so: a tag deleted from the registry is no
// reason to move backwards, and only a person (a release) moves it then.
// Orders that rank the tag's name (semver, alphabetical, numerical, extracted
// values) need no build time for it. A current tag that does not pass the
// policy is not ranked, so changing the policy (or excluding a broken release
// with exclude=) moves the workload to the policy's best tag: a workload
// running 1.3.0 whose policy becomes semver:~1.2 moves to the best 1.2.x.
//
// Semantic versions are parsed and constraints evaluated by an
// allocation-free mirror of Masterminds/semver v3 (the library itself parses
// and validates constraints, and the tests hold the mirror to it), so that
// 100,000 tags take milliseconds; see docs/benchmarks.md.
package policy
