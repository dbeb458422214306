package server

import (
	"fmt"
	"os"
	"runtime"
)

// checkDataDir refuses a data directory that group or others may write
// to: whoever can write there can replace the database, the master key's
// file or twokey.yaml. (Files in it are made 0600, the directory 0700.)
func checkDataDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory; give --data-dir a directory (twokey serve makes a missing one)", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("data directory %s has mode %04o, writable by other users; run 'chmod 700 %s' and start again", dir, perm, dir)
	}
	return nil
}
