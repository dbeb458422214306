//go:build !unix

package server

import "errors"

// raiseFileLimit has no file descriptor limit to raise here.
func raiseFileLimit() (soft, hard, was uint64, err error) {
	return 0, 0, 0, errors.New("no RLIMIT_NOFILE on this system")
}
