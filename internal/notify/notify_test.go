package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type inbox struct {
	mu     sync.Mutex
	bodies []string
}

func (b *inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.bodies = append(b.bodies, string(body))
	b.mu.Unlock()
}

func (b *inbox) wait(t *testing.T, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b.mu.Lock()
		got := append([]string(nil), b.bodies...)
		b.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
	}
}

func TestSinks(t *testing.T) {
	slack, generic := &inbox{}, &inbox{}
	s1, s2 := httptest.NewServer(slack), httptest.NewServer(generic)
	defer s1.Close()
	defer s2.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := New(ctx, []Sink{
		{URL: s1.URL, Slack: true, Burst: 2, Interval: 300 * time.Millisecond},
		{URL: s2.URL, Kinds: []string{PushFailed}},
	})
	if err != nil {
		t.Fatal(err)
	}
	update := Event{Kind: Updated, Repository: "demo", Revision: "0123456789abcdef", Summary: "Update my-demo/fluxdemo flask to develop-v1.8.1",
		Details: []string{"apps/flask.yaml:28 flask: app:develop-v1.8.0 -> app:develop-v1.8.1"}}
	for range 4 { // two pass the burst, two are dropped
		n.Notify(update)
	}
	n.Notify(Event{Kind: PushFailed, Repository: "demo", Summary: "push failed", Error: "git push: rejected"})
	got := slack.wait(t, 2)
	if len(got) != 2 {
		t.Fatalf("slack got %d, want 2 (burst): %v", len(got), got)
	}
	var msg map[string]string
	if err := json.Unmarshal([]byte(got[0]), &msg); err != nil || msg["text"] != "[demo] Update my-demo/fluxdemo flask to develop-v1.8.1 (0123456789ab)\n• apps/flask.yaml:28 flask: app:develop-v1.8.0 -> app:develop-v1.8.1" {
		t.Errorf("slack message: %q (%v)", got[0], err)
	}
	// The push failure went to the generic sink only, as JSON.
	g := generic.wait(t, 1)
	var e Event
	if len(g) != 1 || json.Unmarshal([]byte(g[0]), &e) != nil || e.Kind != PushFailed || e.Error != "git push: rejected" {
		t.Errorf("generic sink: %v", g)
	}
	// After the interval, the next message says how many were dropped.
	time.Sleep(350 * time.Millisecond)
	n.Notify(update)
	got = slack.wait(t, 3)
	if len(got) != 3 || !strings.Contains(got[2], "3 earlier events dropped") {
		t.Errorf("after the rate limit: %v", got)
	}
	// A bad template is refused up front.
	if _, err := New(ctx, []Sink{{URL: s1.URL, Slack: true, Template: "{{ .Nope"}}); err == nil {
		t.Error("a broken template was accepted")
	}
}

func TestDeliveryErrorsHideTheURL(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := "http://127.0.0.1:1/services/T000/B000/secret-token"
	n, _ := New(ctx, []Sink{{URL: url, Slack: true}})
	n.Notify(Event{Kind: Updated, Repository: "demo", Summary: "x"})
	for deadline := time.Now().Add(5 * time.Second); n.Errors()[0] == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	err := n.Errors()[0]
	if err == nil || strings.Contains(err.Error(), "secret-token") {
		t.Errorf("delivery error: %v", err)
	}
}
