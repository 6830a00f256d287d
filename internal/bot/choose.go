package bot

import (
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/policy"
	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/update"
)

// Choice is what a target's policy makes of a scan of its repository.
type Choice struct {
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
func Choose(t update.Target, res *scan.Result, now time.Time) (*Choice, error) {
	ref, err := name.ParseReference(t.Image)
	if err != nil {
		return nil, err
	}
	p, err := policy.Parse(t.Policy)
	if err != nil {
		return nil, err
	}
	current := policy.Candidate{Tag: update.TagOf(t.Image)}
	if img, ok := res.Images[current.Tag]; ok {
		current.Created, current.Digest = img.Created, img.Digest
	}
	sel, err := p.Select(res.Candidates(), current, now)
	if err != nil {
		return nil, err
	}
	c := &Choice{Result: sel}
	c.Tags, c.Filtered = tagNotes(p, res.Tags, sel, current.Tag)
	if !sel.Changed {
		return c, nil
	}
	repo := ref.Context()
	c.Next = repo.Tag(sel.Tag)
	if hasDigest(t.Image) && sel.Digest != "" {
		if c.Next, err = name.NewDigest(repo.Tag(sel.Tag).String() + "@" + sel.Digest); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Need is what a scan must fetch for t's policy (build times, digests).
func Need(t update.Target) (scan.Need, error) {
	p, err := policy.Parse(t.Policy)
	if err != nil {
		return scan.Need{}, err
	}
	return scan.Need{Match: p.Match, BuildTime: p.NeedsBuildTime(), Digest: hasDigest(t.Image)}, nil
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
