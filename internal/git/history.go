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

func (r *Repo) readHistory() []pushRecord {
	var h []pushRecord
	if b, err := os.ReadFile(r.historyPath()); err == nil {
		if json.Unmarshal(b, &h) != nil {
			r.warn("push history " + r.historyPath() + " unreadable: starting a new one")
			return nil
		}
	}
	return h
}

func (r *Repo) recordPushed(commit string, cs *update.ChangeSet) error {
	h := r.readHistory()
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
func (r *Repo) Reverted(file string, w update.Workload, container, from, to string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := historyKey(file, w, container)
	for _, p := range r.readHistory() {
		if p.Key == key && p.Old == from && p.New == to {
			return true
		}
	}
	return false
}
