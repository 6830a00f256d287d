package bot

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/policy"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/update"
)

// Choice is what a target's policy makes of a scan of its repository.
type Choice struct {
	// Result is the policy's answer, except that when the target pins a digest
	// (repo:tag@sha256:…) and the policy keeps its tag while the registry now gives that tag
	// another digest, Result.Changed is true, Result.Digest is the new digest and
	// Result.Reason says the digest moved.
	Result policy.Result
	// Tags are the listed tags the policy's filter lets through (at most maxTagNotes, the
	// chosen and current ones first), each with why it is or is not the one; Filtered counts
	// the listed tags the filter rejects.
	Tags     []TagNote
	Filtered int
	// Next is the reference to write when Result.Changed: the chosen tag, pinned by digest
	// when the target pins one (repo:tag@sha256:…).
	Next name.Reference
}

// Choose applies t's policy to a scan of its image repository at time now. It is what the
// bot decides each cycle, and what the CLI's plan shows.
//
// The running tag is ranked with what the scan says of it. When the registry no longer
// lists it and the target pins a digest that another listed tag still has, that tag's build
// time is the running image's. (The bot also remembers the build times of the tags it has
// seen; Choose alone does not.) When the policy ranks by build time and the running tag's is
// unknown, the policy keeps it: moving could be a downgrade.
func Choose(t update.Target, res *scan.Result, now time.Time) (*Choice, error) {
	return choose(t, res, now, nil)
}

// choose is Choose with what seen remembers of tags the registry no longer lists (nil:
// nothing).
func choose(t update.Target, res *scan.Result, now time.Time, seen *seenTags) (*Choice, error) {
	ref, err := name.ParseReference(t.Image)
	if err != nil {
		return nil, err
	}
	p, err := policy.Parse(t.Policy)
	if err != nil {
		return nil, err
	}
	pinned := pinnedDigest(ref)
	current, note := currentCandidate(update.TagOf(t.Image), pinned, res, seen)
	sel, err := p.Select(res.Candidates(), current, now)
	if err != nil {
		return nil, err
	}
	if note != "" {
		sel.Reason += " (" + note + ")"
	}
	c := &Choice{Result: sel}
	c.Tags, c.Filtered = tagNotes(p, res.Tags, sel, current.Tag)
	repo := ref.Context()
	if !sel.Changed {
		if pinned == "" || current.Tag == "" {
			return c, nil
		}
		// The tag stays; the image it names may not.
		img, ok := res.Images[current.Tag]
		if !ok || img.Digest == "" || img.Digest == pinned {
			return c, nil
		}
		if slices.Contains(sel.TooYoung, current.Tag) {
			c.Result.Reason += fmt.Sprintf("; tag %s now points to %s, built less than min-age ago: waiting", current.Tag, img.Digest)
			return c, nil
		}
		if c.Next, err = name.NewDigest(repo.Tag(current.Tag).String() + "@" + img.Digest); err != nil {
			return nil, err
		}
		c.Result.Changed, c.Result.Digest, c.Result.Created = true, img.Digest, img.Created
		c.Result.Reason = fmt.Sprintf("tag %s moved from %s to %s: pinning the new digest (%s)", current.Tag, pinned, img.Digest, sel.Reason)
		return c, nil
	}
	c.Next = repo.Tag(sel.Tag)
	if pinned != "" && sel.Digest != "" {
		if c.Next, err = name.NewDigest(repo.Tag(sel.Tag).String() + "@" + sel.Digest); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// currentCandidate is the running tag as the policy ranks it, and a note when what is known
// of it does not come from this scan's entry for it. pinned is the digest the reference
// pins, if any.
func currentCandidate(tag, pinned string, res *scan.Result, seen *seenTags) (policy.Candidate, string) {
	c := policy.Candidate{Tag: tag}
	if img, ok := res.Images[tag]; ok {
		c.Created, c.Digest = img.Created, img.Digest
		return c, ""
	}
	if _, listed := slices.BinarySearch(res.Tags, tag); tag == "" || listed {
		return c, "" // listed but not described: the policy keeps it when it needs its time
	}
	// Gone from the registry.
	if pinned != "" {
		for other, img := range res.Images {
			if img.Digest == pinned && !img.Created.IsZero() {
				c.Created, c.Digest = img.Created, pinned
				return c, fmt.Sprintf("running tag %s is gone from the registry; its digest's build time is read from tag %s", tag, other)
			}
		}
	}
	if seen != nil {
		if img, ok := seen.lookup(res.Repo, tag, pinned); ok && !img.Created.IsZero() {
			c.Created, c.Digest = img.Created, img.Digest
			return c, fmt.Sprintf("running tag %s is gone from the registry; its build time is remembered from an earlier scan", tag)
		}
	}
	return c, ""
}

// pinnedDigest is the digest ref pins ("sha256:…"), or "".
func pinnedDigest(ref name.Reference) string {
	if d, ok := ref.(name.Digest); ok {
		return d.DigestStr()
	}
	return ""
}

// Need is what a scan must fetch for t's policy (build times, digests). A target that pins a
// digest has its running tag tracked (a HEAD on every scan, to see whether the tag moved),
// and the one tag a literal glob policy (glob:latest, glob:stable) follows.
func Need(t update.Target) (scan.Need, error) {
	p, err := policy.Parse(t.Policy)
	if err != nil {
		return scan.Need{}, err
	}
	n := scan.Need{Match: p.Match, BuildTime: p.NeedsBuildTime(), Digest: hasDigest(t.Image)}
	if n.Digest {
		tag := update.TagOf(t.Image)
		if tag != "" {
			n.Track = append(n.Track, tag)
		}
		if lit, ok := p.Literal(); ok && lit != tag {
			n.Track = append(n.Track, lit)
		}
	}
	return n, nil
}

// chooseFrom is choose with the bot's memory of the tags it has seen: it records res's
// entries for the running tag and the chosen one.
func (b *Bot) chooseFrom(t update.Target, res *scan.Result) (*Choice, error) {
	b.seen.record(res, update.TagOf(t.Image))
	c, err := choose(t, res, b.opts.Now(), &b.seen)
	if err != nil {
		return nil, err
	}
	b.seen.record(res, c.Result.Tag)
	return c, nil
}

// TagNote says what the policy made of one tag.
type TagNote struct {
	Tag  string `json:"tag"`
	Note string `json:"note"` // chosen, current, too young, no build time, ranks lower
}

const maxTagNotes = 50

func tagNotes(p *policy.Policy, tags []string, sel policy.Result, current string) ([]TagNote, int) {
	notes := map[string]string{}
	for _, t := range sel.TooYoung {
		notes[t] = "too young (min-age)"
	}
	for _, t := range sel.MissingBuildTime {
		notes[t] = "no build time"
	}
	var chosen, cur, rest []TagNote
	filtered := 0
	for _, t := range tags {
		if !p.Match(t) {
			filtered++
			continue
		}
		switch {
		case t == sel.Tag && sel.Changed:
			chosen = append(chosen, TagNote{t, "chosen"})
		case t == current:
			cur = append(cur, TagNote{t, "current"})
		case notes[t] != "":
			rest = append(rest, TagNote{t, notes[t]})
		default:
			rest = append(rest, TagNote{t, "ranks lower"})
		}
	}
	out := append(append(chosen, cur...), rest...)
	if len(out) > maxTagNotes {
		out = out[:maxTagNotes]
	}
	return out, filtered
}
