package git

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/net/proxy"
)

// go-git's SSH transport honours a context only while it opens the TCP connection: the SSH
// handshake, and every read after it, wait forever on a server that accepts a connection and
// then says nothing (an overloaded host, a half-open load balancer). Such a fetch would hold
// its bot, and the daemon's shutdown, indefinitely. So every SSH operation dials through a
// "proxy" of ours, the one dial hook go-git has: its connections are closed when the
// operation's context ends (its Timeout, or the daemon stopping).
const dialScheme = "imagebot-op"

var (
	opsMu  sync.Mutex
	opsSeq uint64
	ops    = map[string]context.Context{}
)

func init() {
	proxy.RegisterDialerType(dialScheme, func(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
		opsMu.Lock()
		ctx, ok := ops[u.Host]
		opsMu.Unlock()
		if !ok {
			return nil, fmt.Errorf("git: dial for an operation that has ended (%s)", u.Host)
		}
		return opDialer{ctx}, nil
	})
}

// bindConnections returns the proxy options that tie the SSH connections of an operation on
// rawURL to ctx, and the function that releases them once the operation is over. Other
// transports (HTTPS) honour ctx themselves and get no proxy.
func bindConnections(ctx context.Context, rawURL string) (transport.ProxyOptions, func()) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil || ep.Protocol != "ssh" {
		return transport.ProxyOptions{}, func() {}
	}
	opsMu.Lock()
	opsSeq++
	id := "op" + strconv.FormatUint(opsSeq, 10)
	ops[id] = ctx
	opsMu.Unlock()
	return transport.ProxyOptions{URL: dialScheme + "://" + id}, func() {
		opsMu.Lock()
		delete(ops, id)
		opsMu.Unlock()
	}
}

// opDialer dials directly and closes the connection when its operation's context ends.
type opDialer struct{ op context.Context }

func (d opDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d opDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	// go-git dials with a context of its own (without a deadline unless the SSH config has
	// one): the operation's must bound the connect too (a host that drops SYNs).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(d.op, cancel)()
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(d.op, func() { conn.Close() })
	return &opConn{Conn: conn, stop: stop}, nil
}

type opConn struct {
	net.Conn
	stop func() bool
}

func (c *opConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// ctxErr puts ctx's error first when ctx has ended: an operation whose connection was closed
// under it reports why (a timeout, a shutdown), not "use of closed network connection".
func ctxErr(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || strings.Contains(err.Error(), ctx.Err().Error()) {
		return err
	}
	return fmt.Errorf("%w: %w", context.Cause(ctx), err)
}
