package demo_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/demo"
	"imagebot.dev/imagebot/internal/testenv"
)

// logWriter sends the narration to the test log.
type logWriter struct{ t *testing.T }

func (l logWriter) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestDemo runs `make demo`'s walkthrough unattended on the real cluster, registry and git
// server, and fails on any step that does not happen.
func TestDemo(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	env := testenv.New(t, demo.EnvOptions(listen))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	w, done, err := demo.Start(ctx, env, listen, t.TempDir(), logWriter{t}, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Walkthrough(ctx); err != nil {
		t.Error(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("daemon: %v", err)
	}
}
