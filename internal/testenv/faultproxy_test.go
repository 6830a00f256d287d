package testenv_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/testenv"
)

func TestFaultProxy(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	p := testenv.StartFaultProxy(host)
	defer p.Close()
	get := func(path string, timeout time.Duration) (*http.Response, string, error) {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + p.Host + path)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	// Pass-through.
	if resp, _, err := get("/v2/", time.Second); err != nil || resp.StatusCode != 200 {
		t.Fatalf("pass-through: %v %v", resp, err)
	}
	// A sequence, then pass-through.
	rule := &testenv.FaultRule{Match: func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/v2/") },
		Faults: []testenv.Fault{
			{Status: 429, Header: http.Header{"Retry-After": {"7"}}, Body: []byte("slow")},
			{AddHeader: http.Header{"Link": {"<x>"}}, Rewrite: func([]byte) []byte { return []byte("rewritten") }},
			{Reset: true},
			{Delay: 2 * time.Second},
		}}
	p.Add(rule)
	resp, body, err := get("/v2/", time.Second)
	if err != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" || body != "slow" {
		t.Errorf("scripted status: %v %q %v", resp, body, err)
	}
	resp, body, err = get("/v2/", time.Second)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Link") != "<x>" || body != "rewritten" {
		t.Errorf("rewrite: %v %q %v", resp, body, err)
	}
	if _, _, err = get("/v2/", time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reset: %v, want ECONNRESET", err)
	}
	start := time.Now()
	if _, _, err = get("/v2/", 200*time.Millisecond); err == nil || time.Since(start) > time.Second {
		t.Errorf("delay: %v after %s, want a client timeout", err, time.Since(start))
	}
	if resp, _, err := get("/v2/", time.Second); err != nil || resp.StatusCode != 200 {
		t.Errorf("after the faults: %v %v", resp, err)
	}
	if rule.Seen() != 5 || p.Count("/v2/") < 5 {
		t.Errorf("seen %d, logged %d", rule.Seen(), p.Count("/v2/"))
	}
	p.Reset()
	if len(p.Requests()) != 0 {
		t.Error("Reset kept the log")
	}
}
