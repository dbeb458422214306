//go:build unix

package load

import (
	"fmt"
	"syscall"
)

// checkFiles fails early, naming the fix, when this process may not open
// the file descriptors a tier needs (both ends of every loopback socket
// live in this process). Go raises the soft limit to the hard one at
// start, so the hard limit is what counts.
func checkFiles(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // unknown: let the run find out
	}
	if uint64(need) > lim.Cur {
		return fmt.Errorf("this run needs about %d open files (both ends of every loopback socket) but the limit is %d: raise it ('ulimit -n %d') or measure smaller scales (--scales 1)", need, lim.Cur, need)
	}
	return nil
}
