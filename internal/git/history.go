package git

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing/object"

	"imagebot.dev/imagebot/internal/update"
)

// maxHistory bounds the remembered pushes.
const maxHistory = 1000

// pushRecord is one image change imagebot pushed to the checked-out branch.
type pushRecord struct {
	Key    string `json:"key"` // file, workload and container
	Old    string `json:"old"`
	New    string `json:"new"`
	Commit string `json:"commit"`
}

func historyKey(file string, w update.Workload, container string) string {
	return file + "\x00" + w.String() + "\x00" + container
}

func (r *Repo) historyPath() string { return filepath.Join(r.opts.Dir, "pushed.json") }

// readHistory returns the push history, read from its file once (this Repo is its only
// writer); the caller holds r.histMu.
func (r *Repo) readHistory() ([]pushRecord, error) {
	if r.historyRead {
		return r.history, nil
	}
	r.historyRead = true
	b, err := os.ReadFile(r.historyPath())
	if err != nil {
		return nil, nil // none yet
	}
	if err := json.Unmarshal(b, &r.history); err != nil {
		r.history = nil
		return nil, fmt.Errorf("push history %s unreadable (%v): starting a new one", r.historyPath(), err)
	}
	return r.history, nil
}

// recordPushed appends the image changes of a push to the history; the caller holds r.mu.
func (r *Repo) recordPushed(commit string, cs *update.ChangeSet) error {
	r.histMu.Lock()
	defer r.histMu.Unlock()
	h, err := r.readHistory()
	if err != nil {
		r.warn(err.Error())
	}
	for _, c := range cs.Changes {
		if c.Annotation == "" {
			h = append(h, pushRecord{Key: historyKey(c.File, c.Workload, c.Container), Old: c.Old, New: c.New, Commit: commit})
		}
	}
	if len(h) > maxHistory {
		h = h[len(h)-maxHistory:]
	}
	return r.writeHistory(h)
}

// writeHistory replaces the history file with h; the caller holds r.histMu.
func (r *Repo) writeHistory(h []pushRecord) error {
	r.history = h
	b, _ := json.Marshal(h)
	tmp := r.historyPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("record push: %w", err)
	}
	return os.Rename(tmp, r.historyPath())
}

// historyWalk bounds the commits rebuildHistory reads back from the branch head.
const historyWalk = 500

// rebuildHistory adds to the push history the image changes of imagebot's own commits among
// the branch's recent history (first parents, up to historyWalk, or the shallow boundary):
// those whose committer is Options.Committer. The history file lives in the data dir,
// which a new pod (an emptyDir) or another replica taking over does not have; the branch
// has the same record, so a human revert stays a pin there too. The caller holds r.histMu.
func (r *Repo) rebuildHistory() error {
	ref, err := r.repo.Reference(r.trackingRef(), true)
	if err != nil {
		return nil // nothing fetched yet
	}
	h, err := r.readHistory()
	if err != nil {
		r.warn(err.Error())
	}
	seen := map[pushRecord]bool{}
	for _, p := range h {
		seen[p] = true
	}
	finder := &update.Finder{NoCache: true, Markers: r.opts.Markers}
	c, err := r.repo.CommitObject(ref.Hash())
	added := 0
	for i := 0; i < historyWalk && err == nil && len(c.ParentHashes) > 0; i++ {
		parent, perr := c.Parent(0)
		if perr != nil {
			break // the shallow boundary
		}
		if c.Committer.Name == r.opts.Committer.Name && c.Committer.Email == r.opts.Committer.Email {
			recs, cerr := imageChanges(finder, parent, c)
			if cerr != nil {
				return fmt.Errorf("commit %s: %w", c.Hash, cerr)
			}
			for _, p := range recs {
				if !seen[p] {
					seen[p] = true
					h = append(h, p)
					added++
				}
			}
		}
		c = parent
	}
	if added == 0 {
		return nil
	}
	if len(h) > maxHistory {
		h = h[len(h)-maxHistory:]
	}
	return r.writeHistory(h)
}

// imageChanges are the image references that differ between parent and c, per file,
// workload and container present in both.
func imageChanges(f *update.Finder, parent, c *object.Commit) ([]pushRecord, error) {
	from, err := parent.Tree()
	if err != nil {
		return nil, err
	}
	to, err := c.Tree()
	if err != nil {
		return nil, err
	}
	changes, err := object.DiffTree(from, to)
	if err != nil {
		return nil, err
	}
	var out []pushRecord
	for _, ch := range changes {
		if ch.From.Name == "" || ch.To.Name == "" || ch.From.Name != ch.To.Name {
			continue // added, deleted or renamed: not an image update
		}
		before, err := blobOf(from, ch.From.Name)
		if err != nil {
			return nil, err
		}
		after, err := blobOf(to, ch.To.Name)
		if err != nil {
			return nil, err
		}
		old := map[string]string{}
		was, _ := f.FindBytes(ch.From.Name, before)
		for _, t := range was {
			old[historyKey(ch.From.Name, t.Workload, t.Container)] = t.Image
		}
		now, _ := f.FindBytes(ch.To.Name, after)
		for _, t := range now {
			key := historyKey(ch.To.Name, t.Workload, t.Container)
			if prev, ok := old[key]; ok && prev != t.Image {
				out = append(out, pushRecord{Key: key, Old: prev, New: t.Image, Commit: c.Hash.String()})
			}
		}
	}
	return out, nil
}

func blobOf(tree *object.Tree, path string) ([]byte, error) {
	f, err := tree.File(path)
	if err != nil {
		return nil, err
	}
	s, err := f.Contents()
	return []byte(s), err
}

// Reverted reports whether imagebot once pushed the change from → to for this container and
// the branch holds from again: someone reverted it (a revert commit, or a rolled-back
// history). A reverted update is a pin, not a fight: the caller should not make the same
// change again, only move on when a different (newer) reference is chosen.
//
// It may be called from an EditFunc during Update.
func (r *Repo) Reverted(file string, w update.Workload, container, from, to string) bool {
	r.histMu.Lock()
	defer r.histMu.Unlock()
	if !r.rebuilt {
		r.rebuilt = true
		if err := r.rebuildHistory(); err != nil {
			r.warn("push history: reading imagebot's commits from the branch: " + err.Error())
		}
	}
	key := historyKey(file, w, container)
	h, _ := r.readHistory()
	for _, p := range h {
		if p.Key == key && p.Old == from && p.New == to {
			return true
		}
	}
	return false
}
