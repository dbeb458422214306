package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/twokey/twokey/conversation"
)

// migrateChunk is how many records of a converted log go in one entry.
const migrateChunk = 64

// migrate converts a file written before the log-first layout: each
// conversation's bucket of records (nested in "log") becomes entries of
// the records bucket and keys of the log index, one conversation per
// transaction, its old bucket deleted in the transaction that copies it;
// a start interrupted halfway resumes with the conversations left. The
// snapshots, requests and other buckets keep their layout. The records'
// bytes are copied as they are, after a check that each one reads and
// follows the one before.
func (s *Bolt) migrate() error {
	var convs [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bLegacyLog)).ForEachBucket(func(k []byte) error {
			convs = append(convs, bytes.Clone(k))
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, conv := range convs {
		err := s.db.Update(func(tx *bolt.Tx) error {
			rb := tx.Bucket([]byte(bRecords))
			rb.FillPercent = 1
			entry := uint64(0)
			if k, _ := rb.Cursor().Last(); len(k) == 8 {
				entry = binary.BigEndian.Uint64(k)
			}
			old := tx.Bucket([]byte(bLegacyLog)).Bucket(conv)
			var chunk [][]byte
			first, want := uint64(1), uint64(1)
			flush := func() error {
				if len(chunk) == 0 {
					return nil
				}
				entry++
				if err := rb.Put(seqKey(entry), encodeEntry(string(conv), first, chunk, nil)); err != nil {
					return err
				}
				if err := tx.Bucket([]byte(bLogIdx)).Put(idxKey(string(conv), first), seqKey(entry)); err != nil {
					return err
				}
				first += uint64(len(chunk))
				chunk = nil
				return nil
			}
			err := old.ForEach(func(k, v []byte) error {
				var r conversation.Record
				if len(k) != 8 || json.Unmarshal(v, &r) != nil || r.Seq != want || binary.BigEndian.Uint64(k) != want {
					return fmt.Errorf("conversation %s: record key %x does not read as record %d", conv, k, want)
				}
				want++
				chunk = append(chunk, bytes.Clone(v))
				if len(chunk) == migrateChunk {
					return flush()
				}
				return nil
			})
			if err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
			if err := tx.Bucket([]byte(Meta)).Put([]byte(metaCheckpoint), seqKey(entry)); err != nil {
				return err
			}
			return tx.Bucket([]byte(bLegacyLog)).DeleteBucket(conv)
		})
		if err != nil {
			return err
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte(bLegacyLog)); err != nil {
			return err
		}
		return tx.Bucket([]byte(Meta)).Put([]byte(metaLayout), []byte(layoutLogFirst))
	})
}
