package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is what the fault proxy does to one request. The zero Fault passes the request
// through unchanged.
type Fault struct {
	// Delay waits before doing anything else (or until the client gives up).
	Delay time.Duration
	// Reset closes the client's connection with a TCP RST instead of answering.
	Reset bool
	// Status, when set, answers with this status, Header and Body instead of asking the
	// upstream registry.
	Status int
	Header http.Header
	Body   []byte
	// AddHeader is set on the upstream's response when it is passed through (e.g. a Link).
	AddHeader http.Header
	// Rewrite, when set, replaces the upstream's response body (Content-Length follows).
	Rewrite func(body []byte) []byte
	// Edit, when set, is Rewrite with the request and the response headers at hand (to
	// paginate a listing, say).
	Edit func(req *http.Request, header http.Header, body []byte) []byte
}

// FaultRule chooses faults for the requests it matches: the n-th matching request gets
// Faults[n], and once they are used up, Then (nil: pass through).
type FaultRule struct {
	Match  func(r *http.Request) bool
	Faults []Fault
	Then   *Fault

	mu sync.Mutex
	n  int
}

func (fr *FaultRule) next() *Fault {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	i := fr.n
	fr.n++
	if i < len(fr.Faults) {
		return &fr.Faults[i]
	}
	return fr.Then
}

// Seen returns how many requests the rule matched.
func (fr *FaultRule) Seen() int {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return fr.n
}

// FaultRequest is one request the proxy saw and what it answered.
type FaultRequest struct {
	Method, Path, Query string
	Status              int // 0 when the connection was reset or the client went away
}

// FaultProxy is a reverse proxy on loopback in front of a registry whose behaviour per
// request is scripted with rules. Requests no rule matches pass through.
type FaultProxy struct {
	// Host is "127.0.0.1:PORT": use it in image references instead of the registry's.
	Host string

	srv      *httptest.Server
	upstream *url.URL
	proxy    *httputil.ReverseProxy

	mu    sync.Mutex
	rules []*FaultRule
	log   []FaultRequest
}

// StartFaultProxy starts a proxy to the plain-HTTP registry at upstreamHost
// ("127.0.0.1:PORT"). Stop it with Close.
func StartFaultProxy(upstreamHost string) *FaultProxy {
	p := &FaultProxy{upstream: &url.URL{Scheme: "http", Host: upstreamHost}}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.upstream)
			pr.Out.Host = upstreamHost
		},
		ModifyResponse: p.modify,
		ErrorLog:       nil,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.Host = strings.TrimPrefix(p.srv.URL, "http://")
	return p
}

// Close stops the proxy and closes client connections.
func (p *FaultProxy) Close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
}

// Add appends a rule; the first rule that matches a request decides its fault.
func (p *FaultProxy) Add(r *FaultRule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
}

// Reset removes every rule and forgets the request log.
func (p *FaultProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules, p.log = nil, nil
}

// Requests returns the requests seen so far, in order of completion.
func (p *FaultProxy) Requests() []FaultRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]FaultRequest(nil), p.log...)
}

// Count returns how many requests the proxy saw whose path contains substr.
func (p *FaultProxy) Count(substr string) int {
	n := 0
	for _, r := range p.Requests() {
		if strings.Contains(r.Path, substr) {
			n++
		}
	}
	return n
}

type faultKey struct{}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	var f *Fault
	p.mu.Lock()
	for _, rule := range p.rules {
		if rule.Match == nil || rule.Match(r) {
			f = rule.next()
			break
		}
	}
	p.mu.Unlock()
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		p.mu.Lock()
		p.log = append(p.log, FaultRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: rec.status})
		p.mu.Unlock()
	}()
	if f != nil && f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	switch {
	case f != nil && f.Reset:
		resetConn(w)
	case f != nil && f.Status != 0:
		for k, v := range f.Header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(f.Body)))
		rec.WriteHeader(f.Status)
		if r.Method != http.MethodHead {
			_, _ = w.Write(f.Body)
		}
	default:
		if f != nil {
			r = r.WithContext(context.WithValue(r.Context(), faultKey{}, f))
		}
		p.proxy.ServeHTTP(rec, r)
	}
}

func (p *FaultProxy) modify(resp *http.Response) error {
	f, _ := resp.Request.Context().Value(faultKey{}).(*Fault)
	if f == nil {
		return nil
	}
	for k, v := range f.AddHeader {
		resp.Header[k] = v
	}
	if f.Rewrite != nil || f.Edit != nil {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if f.Rewrite != nil {
			body = f.Rewrite(body)
		} else {
			body = f.Edit(resp.Request, resp.Header, body)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return nil
}

// resetConn hijacks the connection and closes it with SO_LINGER 0, so the client sees
// "connection reset by peer".
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(fmt.Sprintf("fault proxy: %T cannot hijack", w))
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// BlackHole listens on loopback, accepts connections, reads what they send and never
// answers: a server that hangs. It returns its address; everything stops when t ends.
func BlackHole(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); l.Close(); conns.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				go func() { <-stop; c.Close() }()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return l.Addr().String()
}
