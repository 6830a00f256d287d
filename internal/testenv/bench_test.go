package testenv_test

import (
	"context"
	"testing"
	"time"

	"imagebot.dev/imagebot/internal/testenv"
)

// BenchmarkStart measures starting (until every part is ready: the node Ready, the registry
// answering /v2/, sshd accepting) and stopping a whole environment with cached binaries.
func BenchmarkStart(b *testing.B) {
	if _, err := testenv.BinDir(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		e, err := testenv.Start(ctx, b.TempDir(), testenv.All)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		e.Stop()
	}
}
