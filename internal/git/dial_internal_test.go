package git

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDialEndsWithTheOperation: a TCP connect that the server never answers (SYNs dropped:
// a full accept queue here, a black-holed host in life) ends with the operation's context,
// even though go-git dials with a context of its own.
func TestDialEndsWithTheOperation(t *testing.T) {
	// A listener that never accepts, with a backlog of 1.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	// Fill the accept queue.
	for i := 0; i < 8; i++ {
		d := net.Dialer{Timeout: 300 * time.Millisecond}
		if c, err := d.Dial("tcp", addr); err == nil {
			defer c.Close()
		}
	}
	op, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	// go-git passes context.Background() (no ssh ClientConfig.Timeout is set by imagebot).
	outer, stop := context.WithTimeout(context.Background(), 8*time.Second)
	defer stop()
	start := time.Now()
	c, err := opDialer{op}.DialContext(outer, "tcp", addr)
	if c != nil {
		c.Close()
	}
	took := time.Since(start)
	t.Logf("dial returned after %v: %v", took, err)
	if took > 2*time.Second {
		t.Errorf("the operation's context ended at 500ms; the dial went on for %v", took)
	}
}
