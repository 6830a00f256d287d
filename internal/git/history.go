package git

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

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

// readHistory reads the push history; the caller holds r.histMu.
func (r *Repo) readHistory() ([]pushRecord, error) {
	var h []pushRecord
	b, err := os.ReadFile(r.historyPath())
	if err != nil {
		return nil, nil // none yet
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("push history %s unreadable (%v): starting a new one", r.historyPath(), err)
	}
	return h, nil
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
	b, _ := json.Marshal(h)
	tmp := r.historyPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("record push: %w", err)
	}
	return os.Rename(tmp, r.historyPath())
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
	key := historyKey(file, w, container)
	h, _ := r.readHistory()
	for _, p := range h {
		if p.Key == key && p.Old == from && p.New == to {
			return true
		}
	}
	return false
}
