package bot

import (
	"sync"

	"github.com/google/go-containerregistry/pkg/name"

	"imagebot.dev/imagebot/internal/scan"
)

// seenLimit bounds each of seenTags' two generations: a few entries per automated
// container (its running tag and digest, the tag chosen for it), refreshed every cycle.
const seenLimit = 8192

// seenTags remembers what the scans the bot read said of the tags it runs and chooses (build
// time and digest, by repository and tag, and by repository and digest), so that a running
// tag later deleted from the registry can still be ranked by build time: deleting a tag is
// no reason to move backwards. It is bounded: when the newer generation is full it becomes
// the older one, and what was not used since is forgotten. Memory only; after a restart a
// deleted running tag's build time is unknown, and the policy keeps it.
type seenTags struct {
	mu       sync.Mutex
	cur, old map[string]scan.Image
}

func tagKey(repo name.Repository, tag string) string       { return repo.Name() + ":" + tag }
func digestKey(repo name.Repository, digest string) string { return repo.Name() + "@" + digest }

// record remembers res's image for each of tags (those it describes).
func (s *seenTags) record(res *scan.Result, tags ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tag := range tags {
		img, ok := res.Images[tag]
		if tag == "" || !ok || img.Created.IsZero() && img.Digest == "" {
			continue
		}
		s.put(tagKey(res.Repo, tag), img)
		if img.Digest != "" {
			s.put(digestKey(res.Repo, img.Digest), img)
		}
	}
}

// lookup returns what was seen of repo's tag, or, when digest is set (a reference pinned by
// digest), of that digest.
func (s *seenTags) lookup(repo name.Repository, tag, digest string) (scan.Image, bool) {
	key := tagKey(repo, tag)
	if digest != "" {
		key = digestKey(repo, digest)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	img, ok := s.cur[key]
	if !ok {
		if img, ok = s.old[key]; !ok {
			return scan.Image{}, false
		}
	}
	// Still in use: keep it (and its digest) in the newer generation.
	s.put(key, img)
	if digest == "" && img.Digest != "" {
		s.put(digestKey(repo, img.Digest), img)
	}
	return img, true
}

func (s *seenTags) put(key string, img scan.Image) {
	if s.cur == nil {
		s.cur = map[string]scan.Image{}
	}
	if _, ok := s.cur[key]; !ok && len(s.cur) >= seenLimit {
		s.old, s.cur = s.cur, map[string]scan.Image{}
	}
	s.cur[key] = img
}
