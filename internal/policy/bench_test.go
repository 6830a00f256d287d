package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// syntheticTags makes n candidates, deterministically: 40% semver-like
// ("1.2.3", "v1.2.3", "1.2", "1.2.3-rc.1"), 40% "main-<ts>-<sha>", 20% junk
// ("latest", "pr-123", "sha256-<hex>.sig", "feature-x-7"). Every candidate has
// a build time.
func syntheticTags(n int) []Candidate {
	rng := rand.New(rand.NewPCG(42, uint64(n)))
	cs := make([]Candidate, n)
	for i := range cs {
		var tag string
		switch r := rng.IntN(10); {
		case r < 4:
			ma, mi, pa := rng.IntN(6), rng.IntN(30), rng.IntN(100)
			switch rng.IntN(4) {
			case 0:
				tag = fmt.Sprintf("v%d.%d.%d", ma, mi, pa)
			case 1:
				tag = fmt.Sprintf("%d.%d", ma, mi)
			case 2:
				tag = fmt.Sprintf("%d.%d.%d-rc.%d", ma, mi, pa, rng.IntN(5))
			default:
				tag = fmt.Sprintf("%d.%d.%d", ma, mi, pa)
			}
		case r < 8:
			tag = fmt.Sprintf("main-%d-%07x", 1700000000+rng.IntN(10000000), rng.Uint32()&0xfffffff)
		default:
			switch rng.IntN(4) {
			case 0:
				tag = "latest"
			case 1:
				tag = fmt.Sprintf("pr-%d", rng.IntN(5000))
			case 2:
				tag = fmt.Sprintf("sha256-%016x.sig", rng.Uint64())
			default:
				tag = fmt.Sprintf("feature-%c-%d", 'a'+rng.IntN(26), rng.IntN(100))
			}
		}
		cs[i] = Candidate{Tag: tag, Created: t0.Add(time.Duration(rng.IntN(1<<30)) * time.Second)}
	}
	return cs
}

var benchSpecs = []struct{ name, spec string }{
	{"semver-range", "semver:>=1.2.3 <5"},
	{"glob", "glob:main-*"},
	{"regex-extract-numerical", `regex:^main-(\d+)-[0-9a-f]+$;order=numerical:$1`},
	{"alphabetical", "glob:*;order=alphabetical"},
}

// BenchmarkSelect reports ns/tag and allocs per op; allocs/tag is
// allocs/op divided by the tag count.
func BenchmarkSelect(b *testing.B) {
	for _, size := range []int{1_000, 10_000, 100_000} {
		cands := syntheticTags(size)
		for _, bs := range benchSpecs {
			p, err := Parse(bs.spec)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/n=%d", bs.name, size), func(b *testing.B) {
				benchSelect(b, p, cands)
			})
		}
		// Worst case for the rank-first shortcut: versions in ascending
		// order, so every one beats the best so far and is range-checked.
		p, _ := Parse("semver:>=1.2.3 <5")
		sorted := slices.Clone(cands)
		slices.SortFunc(sorted, func(x, y Candidate) int {
			vx, okx := parseVersion(x.Tag)
			vy, oky := parseVersion(y.Tag)
			if !okx || !oky {
				return cmpBool(okx, oky)
			}
			return vx.compare(&vy)
		})
		b.Run(fmt.Sprintf("semver-range-ascending/n=%d", size), func(b *testing.B) {
			benchSelect(b, p, sorted)
		})
	}
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func benchSelect(b *testing.B, p *Policy, cands []Candidate) {
	b.ReportAllocs()
	cur := Candidate{Tag: cands[0].Tag}
	var res Result
	for b.Loop() {
		var err error
		res, err = p.Select(cands, cur, now)
		if err != nil {
			b.Fatal(err)
		}
	}
	if res.Tag == "" {
		b.Fatal("no tag")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(cands)), "ns/tag")
}

// BenchmarkMastermindsBaseline is the cost per tag of the library's own path
// (semver.NewVersion + Constraints.Check), the reason for the mirror.
func BenchmarkMastermindsBaseline(b *testing.B) {
	cands := syntheticTags(10_000)
	c, _ := parseConstraint(">=1.2.3 <5")
	b.ReportAllocs()
	for b.Loop() {
		for i := range cands {
			c.groups = nil // force the library path
			var v version
			c.check(&v, cands[i].Tag)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(cands)), "ns/tag")
}
