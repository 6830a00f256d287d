package main

import (
	"bytes"
	"os"
	"path/filepath"
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

func TestConfigValidate(t *testing.T) {
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := newRoot()
		root.SetOut(&out)
		root.SetArgs(args)
		err := root.Execute()
		return out.String(), err
	}
	out, err := run("config", "validate", "../../config/examples/demo.yaml")
	if err != nil || !strings.Contains(out, `repository "demo" ok`) {
		t.Errorf("validate example: %q, %v", out, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: imagebot.dev/v1alpha1\nkind: Repository\nmetadata: {name: x}\nspec: {git: {urll: x}}\n"), 0o644)
	if _, err := run("config", "validate", bad); err == nil || !strings.Contains(err.Error(), `bad.yaml: invalid config: line 4: unknown field "urll" in spec.git`) {
		t.Errorf("validate bad: %v", err)
	}
}
