package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Retry bounds the retries of one request.
type Retry struct {
	// Attempts is the most tries of one request, the first included (default 4).
	Attempts int
	// Base and Max bound the exponential backoff between tries (defaults 200ms, 10s); each
	// wait is drawn uniformly between half and all of min(Max, Base·2^try).
	Base, Max time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 4
	}
	if r.Base <= 0 {
		r.Base = 200 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 10 * time.Second
	}
	return r
}

func (r Retry) backoff(try int) time.Duration {
	d := r.Base << min(try, 20)
	if d <= 0 || d > r.Max {
		d = r.Max
	}
	return d/2 + rand.N(d/2+1)
}

// stats counts one scan's requests; it travels in the request context.
type stats struct {
	requests atomic.Int64
	pulls    atomic.Int64 // manifest GETs answered 200: what Docker Hub counts
	waited   atomic.Int64 // nanoseconds spent waiting for the rate limiter
}

type statsKey struct{}

func withStats(ctx context.Context, st *stats) context.Context {
	return context.WithValue(ctx, statsKey{}, st)
}

func statsFrom(ctx context.Context) *stats {
	st, _ := ctx.Value(statsKey{}).(*stats)
	return st
}

// retrying is the scanner's base RoundTripper: every request, the auth handshake's
// included, takes a token from its host's bucket, gets a deadline, and is retried on 429,
// 5xx, resets and timeouts within Retry. go-containerregistry's auth transports sit on top.
type retrying struct {
	inner   http.RoundTripper
	limits  *limiters
	budgets *budgets
	retry   Retry
	timeout time.Duration // per attempt, body included
	maxWait time.Duration // longest Retry-After waited inline
	metrics *Metrics
}

func (t *retrying) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// A request redirected to another host (a blob on a CDN, a pre-signed storage URL)
	// counts as the registry's that sent it there, in its metrics; it takes no token from
	// the registry's bucket, which the redirecting request already paid: the bucket spares
	// the registry, and storage is not the registry (at 10/s, charging both made a cold
	// 1,000-tag scan take 198 s instead of about 165 s).
	first, hops := origin(req)
	host := first.URL.Host
	lim := t.limits.get(host)
	hop := req.URL.Host != host
	st := statsFrom(ctx)
	if hops > maxRedirects {
		// go-containerregistry's redirect policy refuses private addresses but sets no
		// limit on hops: a registry redirecting in a loop would hold the scan to its end.
		return nil, &redirectError{msg: fmt.Sprintf("redirect refused: stopped after %d redirects", maxRedirects)}
	}
	pull := isPull(req)
	budget := t.budgets.get(host)
	var last error
	for try := 0; try < t.retry.Attempts; try++ {
		if try > 0 {
			if req.Body != nil && req.GetBody == nil {
				break // cannot replay the body
			}
			d := t.retry.backoff(try - 1)
			if _, ok := RetryAfter(last); ok {
				d = 0 // the host is paused for it: lim.wait waits, and counts it
			}
			if err := sleep(ctx, d); err != nil {
				return nil, err
			}
		}
		if !hop {
			waited, err := lim.wait(ctx)
			if waited > 0 {
				t.metrics.rateLimitWait(host, waited)
				if st != nil {
					st.waited.Add(int64(waited))
				}
			}
			if err != nil {
				return nil, err
			}
		}
		if pull {
			// Before the attempt's deadline starts: waiting is not the host's slowness.
			if err := t.waitBudget(ctx, budget, req); err != nil {
				return nil, err
			}
		}
		actx, cancel := context.WithTimeout(ctx, t.timeout)
		out := req.Clone(actx)
		if req.Body != nil && req.GetBody != nil {
			var err error
			if out.Body, err = req.GetBody(); err != nil {
				cancel()
				if pull {
					budget.done()
				}
				return nil, err
			}
		}
		if st != nil {
			st.requests.Add(1)
		}
		sent := time.Now()
		resp, err := t.inner.RoundTrip(out)
		if err != nil {
			if pull {
				budget.done()
			}
			cancel()
			t.metrics.request(host, req.Method, "error")
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !transient(err) {
				return nil, err
			}
			last = cleanNetError(err, t.timeout)
			continue
		}
		t.metrics.request(host, req.Method, strconv.Itoa(resp.StatusCode))
		if !hop { // storage behind a redirect does not speak for the registry's budget
			budget.observe(resp.Header, sent, time.Now())
		}
		if pull {
			budget.done()
		}
		if remaining, limit, ok := budget.state(); ok {
			t.metrics.budget(host, remaining, limit)
		}
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			ra := retryAfter(resp.Header.Get("Retry-After"), time.Now())
			drain(resp)
			cancel()
			if _, _, announced := budget.state(); pull && announced {
				// A registry that announces a budget refused a pull: the budget is spent
				// (elsewhere, by the kubelet). Other registries' 429s are rate limits.
				budget.refused(ra, time.Now())
			}
			lim.throttle()
			t.metrics.throttled(host, lim.current())
			last = &StatusError{StatusCode: resp.StatusCode, RetryAfter: ra}
			if ra > t.maxWait {
				return nil, last // the scheduler comes back later
			}
			lim.pause(ra)
			continue
		case resp.StatusCode == http.StatusInternalServerError, resp.StatusCode == http.StatusBadGateway,
			resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
			ra := retryAfter(resp.Header.Get("Retry-After"), time.Now())
			drain(resp)
			cancel()
			last = &StatusError{StatusCode: resp.StatusCode, RetryAfter: ra}
			if ra > t.maxWait {
				return nil, last
			}
			lim.pause(ra)
			continue
		}
		lim.recover()
		if pull && resp.StatusCode == http.StatusOK {
			t.metrics.pull(host)
			if st != nil {
				st.pulls.Add(1)
			}
		}
		if strings.Contains(req.URL.Path, "/manifests/") && resp.StatusCode == http.StatusOK && req.Method == http.MethodGet {
			if resp.ContentLength > maxManifestBytes {
				drain(resp)
				cancel()
				return nil, badResponse("manifest of %d bytes, more than %d", resp.ContentLength, maxManifestBytes)
			}
			resp.Body = &limitBody{ReadCloser: resp.Body, left: maxManifestBytes}
		}
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	if last == nil {
		last = ErrUnavailable
	}
	return nil, &attemptsError{attempts: t.retry.Attempts, last: last}
}

// maxRedirects is how many redirects one request may follow (net/http's own default).
const maxRedirects = 10

// origin is the request a chain of redirects started from, and the number of redirects
// that led to req (the client links each redirected request to the response that caused
// it); past maxRedirects it stops counting.
func origin(req *http.Request) (*http.Request, int) {
	n := 0
	for ; req.Response != nil && req.Response.Request != nil && n <= maxRedirects; n++ {
		req = req.Response.Request
	}
	return req, n
}

// waitBudget returns when the host's pull budget allows a pull: at once, after pauses of
// at most maxWait each, or with a *BudgetError for a longer one (the scheduler comes back
// then). When a pause ends, a HEAD of the same manifest (not a pull) asks the registry
// what the window gave back before any pull is spent.
func (t *retrying) waitBudget(ctx context.Context, b *pullBudget, req *http.Request) error {
	host := req.URL.Host
	counted := false // one pause counted per pull, however many rounds it waits
	for {
		probe, err := b.take(host, time.Now())
		if err == nil && !probe {
			return nil
		}
		if probe {
			if !t.probe(ctx, req) {
				b.forget() // no word on the budget: pull, and learn from the answer
			}
			continue // observe either freed the budget or paused it
		}
		if !counted {
			t.metrics.budgetPause(host)
			counted = true
		}
		d, _ := RetryAfter(err)
		if d > t.maxWait {
			return err
		}
		if st := statsFrom(ctx); st != nil {
			st.waited.Add(int64(d))
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// probe HEADs req's manifest (Docker Hub answers a HEAD with the budget headers and does
// not count it) and reports whether the answer said what the budget is (as observe reads
// it: a Remaining without a usable Limit says nothing, and probing again would loop).
func (t *retrying) probe(ctx context.Context, req *http.Request) bool {
	head := req.Clone(ctx)
	head.Method, head.Body, head.GetBody, head.ContentLength = http.MethodHead, nil, nil, 0
	resp, err := t.RoundTrip(head)
	if err != nil {
		return false
	}
	drain(resp)
	_, _, _, ok := budgetHeaders(resp.Header)
	return ok
}

// limitBody fails a read past its limit (a manifest larger than any real one).
type limitBody struct {
	io.ReadCloser
	left int64
}

func (b *limitBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, badResponse("manifest larger than %d bytes", maxManifestBytes)
		}
		return b.ReadCloser.Read(p)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// transient reports whether a transport error is worth another try: timeouts, resets,
// refused connections, truncated responses.
func transient(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// netError is a transport failure without the request's URL.
type netError struct{ msg string }

func (e *netError) Error() string { return e.msg }

func cleanNetError(err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return &netError{"no response within " + timeout.String()}
	case errors.Is(err, syscall.ECONNRESET):
		return &netError{"connection reset by peer"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &netError{"connection refused"}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &netError{"connection closed before the response"}
	}
	return &netError{"connection failed"}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retryAfter parses a Retry-After header: seconds or an HTTP date. Zero when absent or
// unparsable; capped at an hour.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, time.Hour))
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain reads a little of a body we discard, so the connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

// cancelBody releases an attempt's deadline when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
