package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"imagebot.dev/imagebot/internal/version"
)

func TestVersionCommand(t *testing.T) {
	version.Version, version.Commit = "v1.2.3", "abc123"
	t.Cleanup(func() { version.Version, version.Commit = "", "" })
	var out bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"v1.2.3", "abc123", runtime.Version()} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output %q lacks %q", out.String(), want)
		}
	}
}
