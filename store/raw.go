package store

// The bench's disk ceiling: what bbolt itself does on this disk, measured
// here so that only this package imports bbolt, but without the Store (its
// committer, its checks) around it, since the ceiling must not depend on
// the code it is a ceiling for.

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// RawFigures are durable commits on bbolt directly, as MeasureRaw takes them.
type RawFigures struct {
	// FsyncSeq is transactions/s, one small put and one fsync each,
	// sequential.
	FsyncSeq float64
	// Writes is approval-shaped writes/s from the writers calling
	// DB.Batch (a batch commits as soon as every writer is in it): group
	// commit with nothing of twokey's around it.
	Writes float64
	// Pages is the pages written per write, and PageTime the
	// write-and-sync time per page.
	Pages    float64
	PageTime time.Duration
}

// MeasureRaw measures durable commits on a bbolt file of its own at path
// (removed after), opened as Open opens the store's (map freelist, fsync
// on every commit), for d each: sequential one-put transactions, then
// writers goroutines each making approval-shaped writes (rec appended to
// its own conversation's log bucket, that conversation's snapshot snap,
// the request req under a fresh id) through DB.Batch.
func MeasureRaw(path string, d time.Duration, writers int, rec, snap, req []byte) (RawFigures, error) {
	var f RawFigures
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return f, err
	}
	defer os.Remove(path)
	defer db.Close()
	logB, convsB, reqsB, metaB := []byte(bLegacyLog), []byte(Convs), []byte(Requests), []byte(Meta)
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{logB, convsB, reqsB, metaB} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return f, err
	}
	val := make([]byte, 100)
	n, start := 0, time.Now()
	for time.Since(start) < d {
		err := db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(metaB).Put(fmt.Appendf(nil, "fsync-%08d", n), val)
		})
		if err != nil {
			return f, err
		}
		n++
	}
	f.FsyncSeq = perSec(n, time.Since(start))

	// A batch starts as soon as every writer is in it (or after bbolt's
	// default delay, should one be slow).
	db.MaxBatchSize = writers
	st0 := boltStats(db)
	convs := make([][]byte, writers)
	for w := range convs {
		convs[w] = fmt.Appendf(nil, "conv-%03d", w)
	}
	done, elapsed, err := Writers(writers, d, func(w int, seq uint64) error {
		conv := convs[w]
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], seq)
		rid := []byte(uuid.NewString())
		return db.Batch(func(tx *bolt.Tx) error {
			lb, err := tx.Bucket(logB).CreateBucketIfNotExists(conv)
			if err != nil {
				return err
			}
			if err := lb.Put(key[:], rec); err != nil {
				return err
			}
			if err := tx.Bucket(convsB).Put(conv, snap); err != nil {
				return err
			}
			return tx.Bucket(reqsB).Put(rid, req)
		})
	})
	if err != nil {
		return f, err
	}
	f.Writes = perSec(int(done), elapsed)
	st := boltStats(db).Sub(st0)
	if n := done; n > 0 {
		f.Pages = float64(st.PagesWritten) / float64(n)
		f.PageTime = st.WriteTime / time.Duration(max(1, st.PagesWritten))
	}
	return f, nil
}

func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Writers runs write from writers goroutines, each with its index and a
// seq counting from 1, until d has passed; it returns how many writes
// succeeded, how long they took, and the first error (which stops that
// writer). The bench measures raw bbolt and the store with it alike.
func Writers(writers int, d time.Duration, write func(w int, seq uint64) error) (int64, time.Duration, error) {
	var done atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for seq := uint64(1); time.Since(start) < d; seq++ {
				if err := write(w, seq); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	err, _ := firstErr.Load().(error)
	return done.Load(), time.Since(start), err
}
