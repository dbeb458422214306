//go:build unix

package server

import "syscall"

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard one and returns
// the limits in force after, and the soft limit before. The Go runtime
// already raises it at start (to one below the hard limit, so that it can
// tell a later prlimit apart), so this rarely changes anything; it is done
// here anyway so that the server never depends on it, and so that what it
// runs with can be logged.
func raiseFileLimit() (soft, hard, was uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, 0, err
	}
	was = uint64(lim.Cur)
	if lim.Cur+1 < lim.Max { // not already raised by the runtime
		raised := lim
		raised.Cur = raised.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		} else if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return was, uint64(lim.Max), was, err
		}
	}
	return uint64(lim.Cur), uint64(lim.Max), was, nil
}
