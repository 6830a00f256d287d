package bot

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/update"
)

var (
	t0      = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	chooseT = t0.Add(100 * time.Hour)
)

const testRepo = "registry.example.com/team/app"

// dg is a valid digest made of one repeated hex digit.
func dg(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// img is a tag's entry in a scan: its digest and build time (hours after t0; <0: unknown).
type img struct {
	tag    string
	digest string
	hours  int
}

func result(t *testing.T, imgs ...img) *scan.Result {
	t.Helper()
	repo, err := name.NewRepository(testRepo)
	if err != nil {
		t.Fatal(err)
	}
	res := &scan.Result{Repo: repo, Images: map[string]scan.Image{}}
	for _, i := range imgs {
		res.Tags = append(res.Tags, i.tag)
		si := scan.Image{Digest: i.digest}
		if i.hours >= 0 {
			si.Created = t0.Add(time.Duration(i.hours) * time.Hour)
		}
		res.Images[i.tag] = si
	}
	slices.Sort(res.Tags)
	return res
}

func target(image, policy string) update.Target {
	return update.Target{File: "app.yaml", Container: "app", Image: testRepo + ":" + image, Policy: policy, Automated: true}
}

// A running tag deleted from the registry: ranked by the build time the bot remembers (no
// move to an older tag, a move to a newer one), or kept when nobody knows it.
func TestChooseDeletedTag(t *testing.T) {
	before := result(t, img{"v1", dg('1'), 1}, img{"v2", dg('2'), 2})
	remembered := &seenTags{}
	remembered.record(before, "v2")
	for _, tc := range []struct {
		name    string
		target  update.Target
		res     *scan.Result
		seen    *seenTags
		want    string // the tag chosen or kept
		changed bool
		reason  string
	}{
		{name: "remembered time keeps the newer running tag", target: target("v2", "glob:v*"),
			res: result(t, img{"v1", dg('1'), 1}), seen: remembered, want: "v2", reason: "remembered from an earlier scan"},
		{name: "remembered time still moves forward", target: target("v2", "glob:v*"),
			res: result(t, img{"v1", dg('1'), 1}, img{"v3", dg('3'), 3}), seen: remembered, want: "v3", changed: true, reason: "ranks above current tag v2"},
		{name: "unknown time keeps", target: target("v2", "glob:v*"),
			res: result(t, img{"v1", dg('1'), 1}), want: "v2", reason: "gone from the registry and its build time is unknown"},
		{name: "unknown time keeps even with a newer tag", target: target("v2", "regex:^v"),
			res: result(t, img{"v1", dg('1'), 1}, img{"v3", dg('3'), 3}), seen: &seenTags{}, want: "v2", reason: "release a tag by hand"},
		{name: "pinned digest found under another tag", target: target("v2@"+dg('2'), "glob:v*"),
			res: result(t, img{"v1", dg('1'), 1}, img{"stable", dg('2'), 2}), want: "v2", reason: "read from tag stable"},
		{name: "pinned digest remembered", target: target("v2@"+dg('2'), "glob:v*"),
			res: result(t, img{"v1", dg('1'), 1}), seen: remembered, want: "v2", reason: "remembered"},
		{name: "pinned digest not the one remembered", target: target("v2@"+dg('9'), "glob:v*"),
			res: result(t, img{"v1", dg('1'), 1}), seen: remembered, want: "v2", reason: "build time is unknown"},
		{name: "semver ranks the name", target: target("1.2.0", "semver:^1"),
			res: result(t, img{"1.1.0", dg('1'), -1}, img{"1.3.0", dg('3'), -1}), want: "1.3.0", changed: true},
		{name: "semver keeps a higher deleted tag", target: target("1.2.0", "semver:^1"),
			res: result(t, img{"1.1.0", dg('1'), -1}), want: "1.2.0", reason: "ranks at or above"},
		{name: "numerical ranks the name", target: target("main-5", `regex:^main-(\d+)$;order=numerical:$1`),
			res: result(t, img{"main-4", dg('4'), -1}), want: "main-5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := choose(tc.target, tc.res, chooseT, tc.seen)
			if err != nil {
				t.Fatal(err)
			}
			if c.Result.Tag != tc.want || c.Result.Changed != tc.changed || !strings.Contains(c.Result.Reason, tc.reason) {
				t.Fatalf("got %s (changed %v): %s; want %s (changed %v) with %q", c.Result.Tag, c.Result.Changed, c.Result.Reason, tc.want, tc.changed, tc.reason)
			}
			if tc.changed && update.TagOf(c.Next.String()) != tc.want {
				t.Errorf("Next = %s", c.Next)
			}
		})
	}
}

// The bot's chooser remembers the tags it runs and chooses, so that a deleted one is known.
func TestChooseFromRemembers(t *testing.T) {
	b := New(Options{Now: func() time.Time { return chooseT }})
	c, err := b.chooseFrom(target("v1", "glob:v*"), result(t, img{"v1", dg('1'), 1}, img{"v2", dg('2'), 2}))
	if err != nil || !c.Result.Changed || c.Result.Tag != "v2" {
		t.Fatalf("first choice: %+v, %v", c, err)
	}
	// git now runs v2; the registry loses it.
	c, err = b.chooseFrom(target("v2", "glob:v*"), result(t, img{"v1", dg('1'), 1}))
	if err != nil || c.Result.Changed || c.Result.Tag != "v2" || !strings.Contains(c.Result.Reason, "remembered") {
		t.Fatalf("after v2 was deleted: %+v, %v", c, err)
	}
}

// A pinned tag whose digest moved gets the new digest written; nothing else changes it.
func TestChooseDigestMoved(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target update.Target
		res    *scan.Result
		next   string // "" for no change
		reason string
	}{
		{name: "moved", target: target("1.0@"+dg('a'), "semver:~1.0"), res: result(t, img{"1.0", dg('b'), -1}),
			next: testRepo + ":1.0@" + dg('b'), reason: fmt.Sprintf("tag 1.0 moved from %s to %s", dg('a'), dg('b'))},
		{name: "same digest", target: target("1.0@"+dg('a'), "semver:~1.0"), res: result(t, img{"1.0", dg('a'), -1})},
		{name: "not pinned", target: target("1.0", "semver:~1.0"), res: result(t, img{"1.0", dg('b'), -1})},
		{name: "digest unknown", target: target("1.0@"+dg('a'), "semver:~1.0"), res: result(t, img{"1.0", "", -1})},
		{name: "literal glob", target: target("latest@"+dg('a'), "glob:latest"), res: result(t, img{"latest", dg('b'), 5}),
			next: testRepo + ":latest@" + dg('b'), reason: "moved"},
		{name: "too young for min-age", target: target("1.0@"+dg('a'), "semver:~1.0;min-age=2h"), res: result(t, img{"1.0", dg('b'), 99}),
			reason: "built less than min-age ago: waiting"},
		{name: "a better tag wins over the moved digest", target: target("1.0@"+dg('a'), "semver:~1"),
			res: result(t, img{"1.0", dg('b'), -1}, img{"1.1", dg('c'), -1}), next: testRepo + ":1.1@" + dg('c'), reason: "ranks above"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Choose(tc.target, tc.res, chooseT)
			if err != nil {
				t.Fatal(err)
			}
			if c.Result.Changed != (tc.next != "") || !strings.Contains(c.Result.Reason, tc.reason) {
				t.Fatalf("changed %v: %s; want next %q with %q", c.Result.Changed, c.Result.Reason, tc.next, tc.reason)
			}
			if tc.next != "" && c.Next.String() != tc.next {
				t.Errorf("Next = %s, want %s", c.Next, tc.next)
			}
		})
	}
}

func TestNeedTracks(t *testing.T) {
	for _, tc := range []struct {
		target update.Target
		track  []string
	}{
		{target("1.0@"+dg('a'), "semver:~1.0"), []string{"1.0"}},
		{target("1.0", "semver:~1.0"), nil},
		{target("latest@"+dg('a'), "glob:latest"), []string{"latest"}},
		{target("v1@"+dg('a'), "glob:stable"), []string{"v1", "stable"}},
		{target("stable", "glob:stable"), nil}, // nothing to write when the tag moves
		{update.Target{Image: testRepo + "@" + dg('a'), Policy: "glob:v*"}, nil},
	} {
		need, err := Need(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(need.Track, tc.track) || need.Digest != strings.Contains(tc.target.Image, "@") {
			t.Errorf("%s %s: Track %q, Digest %v; want %q", tc.target.Image, tc.target.Policy, need.Track, need.Digest, tc.track)
		}
	}
}

func TestSeenTagsBounded(t *testing.T) {
	s := &seenTags{}
	keep := result(t, img{"v2", dg('2'), 2})
	s.record(keep, "v2")
	for i := range 5 * seenLimit {
		repo, _ := name.NewRepository(fmt.Sprintf("registry.example.com/r%d", i))
		s.record(&scan.Result{Repo: repo, Images: map[string]scan.Image{"t": {Created: t0}}}, "t")
		if i%(seenLimit/2) == 0 { // used every cycle: never forgotten
			if _, ok := s.lookup(keep.Repo, "v2", ""); !ok {
				t.Fatalf("forgot a tag in use after %d others", i)
			}
		}
	}
	if n := len(s.cur) + len(s.old); n > 2*seenLimit {
		t.Errorf("%d entries, limit %d", n, 2*seenLimit)
	}
	if _, ok := s.lookup(keep.Repo, "v2", dg('2')); !ok {
		t.Error("the digest of a tag in use was forgotten")
	}
}
