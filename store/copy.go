package store

import (
	"errors"
	"os"

	bolt "go.etcd.io/bbolt"
)

// CopyTo writes a consistent copy of the database file to path (created,
// or truncated), as of one moment: a read transaction's view, taken while
// the committer goes on. The copy holds the log and what the last
// checkpoint put in place (derived state still held in memory is in the
// copy's log, as it is in the file); it is the file as a crash at that
// moment would leave it, and the same size. It is synced before CopyTo
// returns, so that whoever measures writes on it does not pay for writing
// it. The bench measures this disk's ideal group commit on such a copy of
// the tier's database.
func (s *Bolt) CopyTo(path string) error {
	return s.db.View(func(tx *bolt.Tx) error {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		_, err = tx.WriteTo(f)
		if err == nil {
			err = f.Sync()
		}
		return errors.Join(err, f.Close())
	})
}
