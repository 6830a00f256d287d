package scan

import (
	"context"
	"testing"
	"time"
)

func TestHostLimiterSlowsAndRecovers(t *testing.T) {
	h := newHostLimiter(Limit{RPS: 64, Burst: 1})
	for _, want := range []float64{32, 16, 8, 4, 2, 1, 1} { // floor: 1/64 of the rate
		h.throttle()
		if got := h.current(); got != want {
			t.Fatalf("after a 429: %v rps, want %v", got, want)
		}
	}
	for range 19 {
		h.recover()
	}
	if got := h.current(); got != 61.8 && (got < 61 || got > 62) {
		t.Errorf("after 19 successes: %v rps, want about 61.8 (+3.2 each)", got)
	}
	h.recover()
	h.recover()
	if got := h.current(); got != 64 {
		t.Errorf("recovered to %v rps, want the configured 64", got)
	}
}

func TestHostLimiterWaits(t *testing.T) {
	h := newHostLimiter(Limit{RPS: 20, Burst: 1})
	ctx := context.Background()
	start := time.Now()
	for range 5 {
		if _, err := h.wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("5 requests at 20/s with burst 1 took %s, want about 200ms", d)
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	h.throttle() // 10/s: the next token is 100ms away
	if _, err := h.wait(ctx); err == nil {
		t.Error("a cancelled wait returned no error")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"30", 30 * time.Second}, {"-5", 0}, {"soon", 0},
		{"Wed, 01 May 2024 12:01:00 GMT", time.Minute},
		{"Wed, 01 May 2024 11:00:00 GMT", 0},
		{"86400", time.Hour}, // capped
	} {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestBackoffIsBoundedAndJittered(t *testing.T) {
	r := Retry{}.withDefaults()
	for try := range 30 {
		d := r.backoff(try)
		ceil := min(r.Max, r.Base<<min(try, 20))
		if d < ceil/2 || d > ceil {
			t.Fatalf("backoff(%d) = %s, want within [%s, %s]", try, d, ceil/2, ceil)
		}
	}
}

func TestHostLimiterPause(t *testing.T) {
	h := newHostLimiter(Limit{RPS: 1000, Burst: 10})
	ctx := context.Background()
	if waited, err := h.wait(ctx); err != nil || waited != 0 {
		t.Fatalf("a full bucket: waited %s, %v; want 0", waited, err)
	}
	h.pause(200 * time.Millisecond) // a Retry-After: every request to the host waits it out
	h.pause(50 * time.Millisecond)  // a shorter one does not shorten it
	start := time.Now()
	waited, err := h.wait(ctx)
	if err != nil || waited < 180*time.Millisecond || time.Since(start) < 180*time.Millisecond || waited > 2*time.Second {
		t.Errorf("after pause(200ms): waited %s (%s), %v; want about 200ms", waited, time.Since(start), err)
	}
	h.pause(time.Hour)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := h.wait(ctx); err == nil {
		t.Error("a wait past its context's deadline returned no error")
	}
}

func TestLimitDefaults(t *testing.T) {
	for _, c := range []struct{ in, want Limit }{
		{Limit{}, Limit{RPS: DefaultRPS, Burst: DefaultBurst}},
		{Limit{RPS: 2}, Limit{RPS: 2, Burst: 2}},
		{Limit{RPS: 0.5}, Limit{RPS: 0.5, Burst: 1}},
		{Limit{Burst: 3}, Limit{RPS: DefaultRPS, Burst: 3}},
	} {
		if got := c.in.withDefaults(); got != c.want {
			t.Errorf("%+v: %+v, want %+v", c.in, got, c.want)
		}
	}
}
