// Package notify sends imagebot's events (an image updated, a push or a sync failed) to
// Slack-compatible incoming webhooks or to generic JSON webhooks, rate-limited.
//
// A Slack-compatible body is {"text": MESSAGE}; a generic body is the Event as JSON. MESSAGE
// is the Go template of the sink over the Event (default DefaultTemplate). Each sink allows
// Burst events at once and then one per Interval (defaults 5 and 1m); events beyond that are
// dropped and counted, and the next event sent says how many were dropped. Sending never
// blocks the caller: events are queued (up to 100) and sent by one goroutine per sink.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"text/template"
	"time"

	"golang.org/x/time/rate"
)

// Kinds of events.
const (
	Updated    = "update"
	PushFailed = "push-failed"
	SyncFailed = "sync-failed"
)

// Event is what happened.
type Event struct {
	Kind       string    `json:"kind"`
	Repository string    `json:"repository"`
	Revision   string    `json:"revision,omitempty"`
	Summary    string    `json:"summary"`           // one line
	Details    []string  `json:"details,omitempty"` // one line per change
	Error      string    `json:"error,omitempty"`
	Time       time.Time `json:"time"`
	Dropped    int       `json:"dropped,omitempty"` // events dropped by the rate limit since the last one sent
}

// DefaultTemplate is the message of a Slack-compatible sink.
const DefaultTemplate = `[{{ .Repository }}] {{ .Summary }}{{ with .Revision }} ({{ printf "%.12s" . }}){{ end }}
{{- range .Details }}
• {{ . }}{{ end }}{{ with .Error }}
error: {{ . }}{{ end }}{{ if .Dropped }}
({{ .Dropped }} earlier events dropped by the rate limit){{ end }}`

// Sink is one destination.
type Sink struct {
	URL      string
	Slack    bool     // {"text": …} instead of the Event as JSON
	Kinds    []string // the kinds to send; empty: all
	Template string   // Slack message template; "" = DefaultTemplate
	Burst    int
	Interval time.Duration
}

// Notifier sends events to its sinks.
type Notifier struct {
	sinks []*sink
}

type sink struct {
	Sink
	tmpl    *template.Template
	limiter *rate.Limiter
	queue   chan Event
	client  *http.Client

	mu      sync.Mutex
	dropped int
	lastErr error
}

// New starts a Notifier; its goroutines end with ctx.
func New(ctx context.Context, sinks []Sink) (*Notifier, error) {
	n := &Notifier{}
	for _, s := range sinks {
		text := s.Template
		if text == "" {
			text = DefaultTemplate
		}
		t, err := template.New("notification").Option("missingkey=error").Parse(text)
		if err != nil {
			return nil, fmt.Errorf("notification template: %w", err)
		}
		if s.Burst <= 0 {
			s.Burst = 5
		}
		if s.Interval <= 0 {
			s.Interval = time.Minute
		}
		k := &sink{Sink: s, tmpl: t, limiter: rate.NewLimiter(rate.Every(s.Interval), s.Burst),
			queue: make(chan Event, 100), client: &http.Client{Timeout: 10 * time.Second}}
		go k.run(ctx)
		n.sinks = append(n.sinks, k)
	}
	return n, nil
}

// Notify queues e for every sink that wants its kind; it never blocks.
func (n *Notifier) Notify(e Event) {
	if n == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	for _, s := range n.sinks {
		if len(s.Kinds) > 0 && !contains(s.Kinds, e.Kind) {
			continue
		}
		if !s.limiter.Allow() {
			s.mu.Lock()
			s.dropped++
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		e.Dropped, s.dropped = s.dropped, 0
		s.mu.Unlock()
		select {
		case s.queue <- e:
		default:
			s.mu.Lock()
			s.dropped += 1 + e.Dropped
			s.mu.Unlock()
		}
	}
}

// Errors returns each sink's last delivery error (nil entries for healthy sinks).
func (n *Notifier) Errors() []error {
	var out []error
	for _, s := range n.sinks {
		s.mu.Lock()
		out = append(out, s.lastErr)
		s.mu.Unlock()
	}
	return out
}

func (s *sink) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-s.queue:
			err := s.send(ctx, e)
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
		}
	}
}

func (s *sink) send(ctx context.Context, e Event) error {
	var body []byte
	if s.Slack {
		var msg strings.Builder
		if err := s.tmpl.Execute(&msg, e); err != nil {
			return fmt.Errorf("notification template: %w", err)
		}
		body, _ = json.Marshal(map[string]string{"text": msg.String()})
	} else {
		body, _ = json.Marshal(e)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("notify: %s", redact(err.Error(), s.URL))
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("notify: %s", resp.Status)
	}
	return nil
}

// redact removes the webhook URL (a secret for Slack) from an error message.
func redact(msg, url string) string { return strings.ReplaceAll(msg, url, "<webhook URL>") }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
