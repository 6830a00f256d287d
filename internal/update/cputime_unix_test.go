//go:build unix

package update

import (
	"syscall"
	"time"
)

// cpuTime returns the user+system CPU time of this process so far (all threads, GC too).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
