// Package version reports the build's version, commit and Go version.
//
// Version and Commit are set at link time:
//
//	go build -ldflags "-X imagebot.dev/imagebot/internal/version.Version=v0.1.0 \
//	  -X imagebot.dev/imagebot/internal/version.Commit=$(git rev-parse HEAD)"
//
// Without them, the module build info embedded by the Go toolchain is used where present.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by -ldflags -X at build time.
var (
	Version = ""
	Commit  = ""
)

// Info is what `imagebot version` prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the build's version information, falling back to the embedded build info and
// then to "dev" / "unknown".
func Get() Info {
	info := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && info.Commit == "" {
				info.Commit = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

// String renders the information on one line.
func (i Info) String() string {
	return fmt.Sprintf("imagebot %s (commit %s, %s, %s)", i.Version, i.Commit, i.GoVersion, i.Platform)
}
