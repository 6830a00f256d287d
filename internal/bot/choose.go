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
	current := policy.Candidate{Tag: currentTag(t.Image)}
	if img, ok := res.Images[current.Tag]; ok {
		current.Created, current.Digest = img.Created, img.Digest
	}
	sel, err := p.Select(res.Candidates(), current, now)
	if err != nil {
		return nil, err
	}
	c := &Choice{Result: sel}
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
