package scan

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token bucket for one registry host: RPS requests per second on average,
// bursts of up to Burst.
type Limit struct {
	RPS   float64
	Burst int
}

// Defaults: gentle enough for Docker Hub and Quay, fast enough for 200 repositories a cycle.
const (
	DefaultRPS   = 10
	DefaultBurst = 20
)

// withDefaults fills in DefaultRPS and DefaultBurst; a rate given without a burst gets a
// burst of one second's worth.
func (l Limit) withDefaults() Limit {
	if l.RPS <= 0 {
		l.RPS = DefaultRPS
		if l.Burst <= 0 {
			l.Burst = DefaultBurst
		}
	}
	if l.Burst <= 0 {
		l.Burst = max(1, int(l.RPS))
	}
	return l
}

// hostLimiter is one host's bucket, slowed on 429 and recovering on success, and paused
// for the Retry-After a registry asks for.
type hostLimiter struct {
	mu    sync.Mutex
	lim   *rate.Limiter
	base  rate.Limit // configured rate
	floor rate.Limit // never slower than this
	until time.Time  // no request before this (a Retry-After)
}

func newHostLimiter(l Limit) *hostLimiter {
	l = l.withDefaults()
	base := rate.Limit(l.RPS)
	return &hostLimiter{lim: rate.NewLimiter(base, l.Burst), base: base, floor: max(base/64, 0.05)}
}

// wait waits out a pause, takes a token and reports how long it waited.
func (h *hostLimiter) wait(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	h.mu.Lock()
	paused := time.Until(h.until)
	h.mu.Unlock()
	if paused > 0 {
		if err := sleep(ctx, paused); err != nil {
			return time.Since(start), err
		}
	}
	r := h.lim.Reserve()
	if !r.OK() {
		return time.Since(start), context.DeadlineExceeded
	}
	d := r.Delay()
	if d == 0 {
		if paused <= 0 {
			return 0, nil
		}
		return time.Since(start), nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return time.Since(start), nil
	case <-ctx.Done():
		r.Cancel()
		return time.Since(start), ctx.Err()
	}
}

// pause holds every request to the host for d (a Retry-After): the registry asked this
// client to wait, not only the request it refused.
func (h *hostLimiter) pause(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if u := time.Now().Add(d); u.After(h.until) {
		h.until = u
	}
}

// throttle halves the rate after a 429 (multiplicative decrease, down to floor).
func (h *hostLimiter) throttle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lim.SetLimit(max(h.lim.Limit()/2, h.floor))
}

// recover raises the rate by a twentieth of the configured one after a success (additive
// increase), so a host recovers its full rate over about twenty good requests per halving.
func (h *hostLimiter) recover() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur := h.lim.Limit(); cur < h.base {
		h.lim.SetLimit(min(h.base, cur+h.base/20))
	}
}

// current is the rate now in force.
func (h *hostLimiter) current() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return float64(h.lim.Limit())
}

// limiters holds one bucket per host.
type limiters struct {
	def   Limit
	hosts map[string]Limit

	mu sync.Mutex
	m  map[string]*hostLimiter
}

func newLimiters(def Limit, hosts map[string]Limit) *limiters {
	return &limiters{def: def, hosts: hosts, m: map[string]*hostLimiter{}}
}

func (l *limiters) get(host string) *hostLimiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.m[host]
	if !ok {
		lim, ok := l.hosts[host]
		if !ok {
			lim = l.def
		}
		h = newHostLimiter(lim)
		l.m[host] = h
	}
	return h
}
