//go:build !unix

package update

import "time"

func cpuTime() time.Duration { return 0 }
