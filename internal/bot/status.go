package bot

import "time"

// Status is what the last reconcile found and did, for logs and the status API.
type Status struct {
	Repository string         `json:"repository"`
	Started    time.Time      `json:"started"`
	Duration   time.Duration  `json:"duration"`
	Revision   string         `json:"revision,omitempty"` // the commit the working tree ended at
	Pushed     string         `json:"pushed,omitempty"`   // the commit this cycle pushed
	Synced     string         `json:"synced,omitempty"`   // the commit this cycle applied
	Targets    []TargetStatus `json:"targets,omitempty"`
	Problems   []string       `json:"problems,omitempty"`
	Error      string         `json:"error,omitempty"`
}

// TargetStatus is one automated container: what it runs, what the policy prefers, and why
// the two differ when they do.
type TargetStatus struct {
	File      string `json:"file"`
	Workload  string `json:"workload"`
	Container string `json:"container"`
	Image     string `json:"image"`
	Policy    string `json:"policy"`
	Best      string `json:"best,omitempty"`
	Pending   bool   `json:"pending,omitempty"` // an update was decided this cycle
	Reason    string `json:"reason,omitempty"`
	// Tags are the tags the policy's filter lets through (at most 50) with what the policy
	// made of each; Filtered counts the tags its filter rejects.
	Tags     []TagNote `json:"tags,omitempty"`
	Filtered int       `json:"filtered,omitempty"`
}

// Status returns the last reconcile's status.
func (b *Bot) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}
