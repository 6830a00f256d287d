package scan

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	for _, tc := range []struct {
		in     string
		n      int
		window time.Duration
		ok     bool
	}{
		{"100;w=21600", 100, 6 * time.Hour, true},
		{"76;w=21600", 76, 6 * time.Hour, true},
		{" 5 ; w=60 ", 5, time.Minute, true},
		{"42", 42, 0, true},
		{"", 0, 0, false},
		{"many;w=60", 0, 0, false},
		{"-1;w=60", 0, 0, false},
		{"5;w=forever", 5, 0, true},
	} {
		n, w, ok := parseRateLimit(tc.in)
		if n != tc.n || w != tc.window || ok != tc.ok {
			t.Errorf("parseRateLimit(%q) = %d, %s, %v; want %d, %s, %v", tc.in, n, w, ok, tc.n, tc.window, tc.ok)
		}
	}
}

func budgetHeader(limit, remaining int) http.Header {
	h := http.Header{}
	h.Set("RateLimit-Limit", strconv.Itoa(limit)+";w=100")
	h.Set("RateLimit-Remaining", strconv.Itoa(remaining)+";w=100")
	return h
}

// TestPullBudgetStates walks one host's budget: pulls while above the reserve, a pause of
// the window's share per missing pull when it is reached, a probe when the pause ends, the
// pulls in flight counted against what remains, and a 429's Retry-After.
func TestPullBudgetStates(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := &pullBudget{reserve: 0.2} // of 10: keep 2
	if probe, err := b.take("hub", now); probe || err != nil {
		t.Fatalf("unknown budget: probe %v, %v; want a pull", probe, err)
	}
	b.observe(budgetHeader(10, 4), now, now)
	b.done()
	// 4 left, keep 2: two pulls may be in flight, not a third.
	for i := range 2 {
		if probe, err := b.take("hub", now); probe || err != nil {
			t.Fatalf("4 left, %d in flight: %v, %v", i, probe, err)
		}
	}
	if _, err := b.take("hub", now); !errors.Is(err, ErrPullBudget) {
		t.Fatalf("4 left, 2 in flight, keep 2: %v; want a short wait for their answers", err)
	}
	b.observe(budgetHeader(10, 3), now, now)
	b.done()
	b.observe(budgetHeader(10, 2), now, now)
	b.done()
	// At the reserve: paused for one pull's share of the window (100s / 10).
	_, err := b.take("hub", now)
	var be *BudgetError
	if !errors.As(err, &be) || !be.Until.Equal(now.Add(10*time.Second)) || be.Remaining != 2 || be.Limit != 10 {
		t.Fatalf("at the reserve: %v (%+v)", err, be)
	}
	// The pause over, the last word still low: ask first.
	if probe, err := b.take("hub", now.Add(11*time.Second)); !probe || err != nil {
		t.Fatalf("after the pause: probe %v, %v; want a probe", probe, err)
	}
	b.observe(budgetHeader(10, 9), now.Add(11*time.Second), now.Add(11*time.Second))
	if probe, err := b.take("hub", now.Add(11*time.Second)); probe || err != nil {
		t.Fatalf("9 left after the probe: %v, %v", probe, err)
	}
	b.done()
	// A 429 (someone else spent it) pauses for its Retry-After.
	b.refused(30*time.Second, now.Add(12*time.Second))
	if _, err := b.take("hub", now.Add(41*time.Second)); !errors.As(err, &be) || !be.Until.Equal(now.Add(42*time.Second)) {
		t.Fatalf("after a 429: %v", err)
	}
	if d, ok := RetryAfter(be); !ok || d <= 0 {
		t.Errorf("RetryAfter(%v) = %v, %v", be, d, ok)
	}
	// No reserve: pulls down to the last one.
	b = &pullBudget{reserve: 0}
	b.observe(budgetHeader(10, 1), now, now)
	if probe, err := b.take("hub", now); probe || err != nil {
		t.Fatalf("no reserve, 1 left: %v, %v", probe, err)
	}
}

// TestProbeWithoutUsableBudget: when the pause ends, a probe whose answer carries
// RateLimit-Remaining but no usable RateLimit-Limit (absent, or 0) says nothing observe can
// use: the pull goes ahead (and learns from its own answer) instead of probing again and
// again until the scan's deadline.
func TestProbeWithoutUsableBudget(t *testing.T) {
	for _, limit := range []string{"", "0;w=1"} {
		t.Run("limit="+limit, func(t *testing.T) {
			var gets, heads atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodHead {
					heads.Add(1)
					if limit != "" {
						w.Header().Set("RateLimit-Limit", limit)
					}
					w.Header().Set("RateLimit-Remaining", "2;w=1")
					return
				}
				gets.Add(1)
				w.Header().Set("RateLimit-Limit", "10;w=1")
				w.Header().Set("RateLimit-Remaining", "2;w=1") // at the reserve: pause 100ms
				fmt.Fprint(w, "{}")
			}))
			defer srv.Close()
			rt := &retrying{inner: http.DefaultTransport, limits: newLimiters(Limit{}, nil), budgets: newBudgets(0.2),
				retry: Retry{}.withDefaults(), timeout: 5 * time.Second, maxWait: 10 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			for i := range 2 {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v2/r/manifests/x", nil)
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatalf("pull %d: %v (%d HEADs)", i, err, heads.Load())
				}
				drain(resp)
			}
			if gets.Load() != 2 || heads.Load() > 2 {
				t.Errorf("%d GETs, %d HEADs; want 2 GETs after at most 2 probes", gets.Load(), heads.Load())
			}
		})
	}
}

// TestBudgetWaitOutsideAttemptDeadline: the time a pull waits for its host's budget (inline
// pauses of at most maxWait) is not taken from the attempt's own deadline: a request sent
// after the wait has its whole RequestTimeout.
func TestBudgetWaitOutsideAttemptDeadline(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit-Limit", "10;w=3")
		if r.Method == http.MethodHead {
			w.Header().Set("RateLimit-Remaining", "9;w=3")
			return
		}
		time.Sleep(100 * time.Millisecond)
		w.Header().Set("RateLimit-Remaining", "2;w=3") // at the reserve: pause 300ms
		gets.Add(1)
		fmt.Fprint(w, "{}")
	}))
	defer srv.Close()
	rt := &retrying{inner: http.DefaultTransport, limits: newLimiters(Limit{}, nil), budgets: newBudgets(0.2),
		retry: Retry{Attempts: 1}.withDefaults(), timeout: 250 * time.Millisecond, maxWait: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 2 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v2/r/manifests/x", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
		drain(resp)
	}
	if gets.Load() != 2 {
		t.Errorf("%d GETs; want 2", gets.Load())
	}
}

// TestPullBudgetAnswersOutOfOrder: pulls in flight together are answered in any order; an
// answer to a pull sent before the budget was last heard of cannot raise what remains
// (which would spend the reserve), while one sent after can (the window gave pulls back).
func TestPullBudgetAnswersOutOfOrder(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := &pullBudget{reserve: 0.2} // of 10: keep 2
	b.observe(budgetHeader(10, 6), now, now)
	for range 3 {
		if _, err := b.take("hub", now); err != nil {
			t.Fatal(err)
		}
	}
	sent := now.Add(time.Second)
	b.observe(budgetHeader(10, 3), sent, sent.Add(100*time.Millisecond)) // the last one sent
	b.done()
	b.observe(budgetHeader(10, 5), sent, sent.Add(200*time.Millisecond)) // the first one, late
	b.done()
	b.observe(budgetHeader(10, 4), sent, sent.Add(300*time.Millisecond))
	b.done()
	if remaining, _, _ := b.state(); remaining != 3 {
		t.Errorf("remaining %d after answers 3, 5, 4 to pulls sent together; want 3", remaining)
	}
	if probe, err := b.take("hub", sent.Add(300*time.Millisecond)); probe || err != nil {
		t.Fatalf("3 left, keep 2: %v, %v; want one more pull", probe, err)
	}
	b.done()
	// A probe sent later hears that the window gave pulls back.
	later := sent.Add(time.Minute)
	b.observe(budgetHeader(10, 8), later, later)
	if remaining, _, _ := b.state(); remaining != 8 {
		t.Errorf("remaining %d after a later answer of 8; want 8", remaining)
	}
}
