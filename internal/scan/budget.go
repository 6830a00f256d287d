package scan

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultPullReserve is the share of a host's announced pull budget the scanner leaves
// unspent: the kubelet's image pulls come out of the same budget (Docker Hub counts per
// account, or per address for anonymous pulls), and a node that cannot pull is worse than
// a scan that waits.
const DefaultPullReserve = 0.2

// pullBudget follows one host's pull budget as Docker Hub announces it on manifest answers
// ("RateLimit-Limit: 100;w=21600", "RateLimit-Remaining: 76;w=21600"): a manifest GET is a
// pull, a HEAD is not. When what remains falls to the reserve, manifest GETs to the host
// pause; HEADs (and so scans whose images are all described already) go on.
type pullBudget struct {
	reserve float64 // share of the limit kept

	mu        sync.Mutex
	known     bool
	limit     int
	remaining int
	window    time.Duration
	until     time.Time // no manifest GET before this
	inflight  int       // pulls sent and not answered yet
	heard     time.Time // when remaining was last taken from an answer
}

// observe reads the budget headers of an answer, if any, and pauses pulls when what
// remains is at or below the reserve: for the time the window takes to give back as many
// pulls as are missing, at its average rate (a rolling window does not say when each of
// its pulls expires). sent is when the request was sent: pulls in flight together are
// answered in any order, and an answer to a request sent before the last word on the budget
// was heard cannot raise what remains (it would spend the reserve).
func (b *pullBudget) observe(h http.Header, sent, now time.Time) {
	limit, remaining, window, ok := budgetHeaders(h)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.known && remaining > b.remaining && sent.Before(b.heard) {
		remaining = b.remaining
	} else {
		b.heard = now
	}
	b.known, b.limit, b.remaining, b.window = true, limit, remaining, window
	keep := b.keep()
	if remaining > keep {
		return
	}
	per := window / time.Duration(limit)
	if per <= 0 {
		per = time.Second
	}
	if until := now.Add(per * time.Duration(keep-remaining+1)); until.After(b.until) {
		b.until = until
	}
}

// budgetHeaders reads an answer's budget: ok only when both headers are there and the
// limit is positive (what observe records).
func budgetHeaders(h http.Header) (limit, remaining int, window time.Duration, ok bool) {
	limit, w1, ok1 := parseRateLimit(h.Get("RateLimit-Limit"))
	remaining, w2, ok2 := parseRateLimit(h.Get("RateLimit-Remaining"))
	if !ok1 || !ok2 || limit <= 0 {
		return 0, 0, 0, false
	}
	return limit, remaining, max(w1, w2), true
}

// keep is how many pulls the reserve holds back: at least one when there is a reserve.
func (b *pullBudget) keep() int {
	if b.reserve <= 0 {
		return 0
	}
	return max(1, int(b.reserve*float64(b.limit)))
}

// refused records a 429 to a pull: no pull before the Retry-After (or, without one, one
// window's share of a pull, or a minute when the window is unknown).
func (b *pullBudget) refused(retryAfter time.Duration, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if retryAfter <= 0 {
		retryAfter = time.Minute
		if b.known && b.limit > 0 {
			retryAfter = max(time.Second, b.window/time.Duration(b.limit))
		}
	}
	if until := now.Add(retryAfter); until.After(b.until) {
		b.until = until
	}
}

// take asks for one pull. It returns a *BudgetError while pulls are paused (or, briefly,
// while pulls in flight may spend what remains above the reserve), probe when the pause is
// over but the last word on the budget was low (ask the registry again before pulling),
// and otherwise counts the pull in flight: done must follow.
func (b *pullBudget) take(host string, now time.Time) (probe bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.until) {
		return false, b.paused(host, b.until)
	}
	if b.known && b.remaining-b.inflight <= b.keep() {
		if b.inflight > 0 {
			return false, b.paused(host, now.Add(inflightWait))
		}
		return true, nil
	}
	b.inflight++
	return false, nil
}

// inflightWait is how long a pull waits for those in flight to say what is left.
const inflightWait = 50 * time.Millisecond

func (b *pullBudget) paused(host string, until time.Time) *BudgetError {
	return &BudgetError{Host: host, Until: until, Remaining: b.remaining, Limit: b.limit, Window: b.window}
}

// done ends a pull that take counted (after observe has read its answer).
func (b *pullBudget) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inflight--
}

// forget drops what was announced (a probe that got no answer on the budget).
func (b *pullBudget) forget() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.known = false
}

// state returns what was last announced (known is false before any announcement).
func (b *pullBudget) state() (remaining, limit int, known bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.remaining, b.limit, b.known
}

// parseRateLimit reads "100;w=21600" (a count and an optional window in seconds).
func parseRateLimit(v string) (n int, window time.Duration, ok bool) {
	if v == "" {
		return 0, 0, false
	}
	parts := strings.Split(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || n < 0 {
		return 0, 0, false
	}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "w") {
			if s, err := strconv.Atoi(val); err == nil && s > 0 {
				window = time.Duration(s) * time.Second
			}
		}
	}
	return n, window, true
}

// isPull reports whether req is what Docker Hub counts as a pull: a GET of a manifest.
func isPull(req *http.Request) bool {
	return req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/v2/") &&
		strings.Contains(req.URL.Path, "/manifests/")
}

// BudgetError says that a host's pull budget is paused: the scan stopped before spending
// the reserve. It wraps ErrRateLimited and ErrPullBudget; RetryAfter gives the wait.
type BudgetError struct {
	Host      string
	Until     time.Time
	Remaining int // pulls left when the host last said (0 when it did not)
	Limit     int
	Window    time.Duration
}

func (e *BudgetError) Error() string {
	s := fmt.Sprintf("paused by the %s pull budget until %s", e.Host, e.Until.Local().Format("15:04:05"))
	if e.Limit > 0 {
		s += fmt.Sprintf(" (%d of %d pulls left per %s)", e.Remaining, e.Limit, e.Window)
	}
	return s
}

// Is maps the error to ErrRateLimited and ErrPullBudget.
func (e *BudgetError) Is(target error) bool {
	return target == ErrRateLimited || target == ErrPullBudget
}

// budgets holds the pull budget of every host seen.
type budgets struct {
	reserve float64
	mu      sync.Mutex
	hosts   map[string]*pullBudget
}

func newBudgets(reserve float64) *budgets {
	return &budgets{reserve: reserve, hosts: map[string]*pullBudget{}}
}

func (b *budgets) get(host string) *pullBudget {
	b.mu.Lock()
	defer b.mu.Unlock()
	pb, ok := b.hosts[host]
	if !ok {
		pb = &pullBudget{reserve: b.reserve}
		b.hosts[host] = pb
	}
	return pb
}
