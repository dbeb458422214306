package store

// The bench's disk ceiling: what bbolt itself does on this disk, measured
// here so that only this package imports bbolt, but without the Store (its
// committer, its checks) around it, since the ceiling must not depend on
// the code it is a ceiling for.
//
// MeasureIdeal is the ceiling: the group commit this disk allows, one
// committer appending everything queued in one transaction as soon as the
// previous one ends. MeasureRaw is kept as a reference: bbolt's DB.Batch,
// whose batches close on a 10 ms timer or when full, measures bbolt's
// batching, not the disk.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// RawFigures are durable commits on bbolt directly, as MeasureRaw takes
// them: a reference, not the ceiling (see MeasureIdeal).
type RawFigures struct {
	// FsyncSeq is transactions/s, one small put and one fsync each,
	// sequential.
	FsyncSeq float64
	// Writes is approval-shaped writes/s from the writers calling
	// DB.Batch (a batch commits as soon as every writer is in it, or
	// after bbolt's 10 ms MaxBatchDelay): bbolt's own group commit, with
	// nothing of twokey's around it, in the layout twokey wrote before it
	// was log-first.
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

// IdealFigures are the ideal group commit on one file, as MeasureIdeal
// takes it.
type IdealFigures struct {
	// Writes is appends/s: durable, each acknowledged to its writer once
	// the commit holding it is synced.
	Writes float64
	// Commits is how many transactions (one fsync each) carried them.
	Commits int64
	Done    int64
	// Pages and Bytes are what bbolt wrote per append (TxStats' pages
	// times the page size: what the fsyncs carried), and PageTime the
	// write-and-sync time per page.
	Pages    float64
	Bytes    float64
	PageTime time.Duration
	// FileBytes is the size of the file measured on, before the appends.
	FileBytes int64
}

// idealBucket is MeasureIdeal's own bucket, apart from whatever the file
// holds.
const idealBucket = "bench.ideal"

// MeasureIdeal measures this disk's ideal group commit on the bbolt file
// at path (opened as Open opens the store's: map freelist, fsync on every
// commit; the caller removes it), for d: writers goroutines each append
// value and wait until it is durable; ONE committer takes everything
// queued, appends it in one transaction under a global big-endian
// sequence in a bucket of its own (sequential appends, FillPercent 1),
// and takes the next batch as soon as that commit ends: no timer, no
// DB.Batch, nothing but bbolt and the disk. This is the ceiling a
// log-first store can reach on this disk; the store's own committer is
// the same design, with twokey's work around it.
func MeasureIdeal(path string, d time.Duration, writers int, value []byte) (IdealFigures, error) {
	var f IdealFigures
	if fi, err := os.Stat(path); err == nil {
		f.FileBytes = fi.Size()
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return f, err
	}
	defer db.Close()
	name := []byte(idealBucket)
	err = db.Update(func(tx *bolt.Tx) error {
		_ = tx.DeleteBucket(name) // a bucket of its own, empty
		_, err := tx.CreateBucket(name)
		return err
	})
	if err != nil {
		return f, err
	}
	pageSize := int64(db.Info().PageSize)

	type ask struct{ done chan error }
	queue := make(chan *ask, writers)
	var commits int64
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		var seq uint64
		batch := make([]*ask, 0, writers)
		for a := range queue {
			batch = append(batch[:0], a)
		fill:
			for {
				select {
				case b, ok := <-queue:
					if !ok {
						break fill
					}
					batch = append(batch, b)
				default:
					break fill
				}
			}
			next := seq
			err := db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(name)
				b.FillPercent = 1 // appends only: fill each page
				for range batch {
					next++
					if err := b.Put(seqKey(next), value); err != nil {
						return err
					}
				}
				return nil
			})
			if err == nil {
				seq = next
				commits++
			}
			for _, a := range batch {
				a.done <- err
			}
		}
	}()
	asks := make([]*ask, writers)
	for w := range asks {
		asks[w] = &ask{done: make(chan error, 1)}
	}
	st0 := boltStats(db)
	done, elapsed, err := Writers(writers, d, func(w int, _ uint64) error {
		a := asks[w]
		queue <- a
		return <-a.done
	})
	close(queue)
	<-committed
	if err != nil {
		return f, err
	}
	st := boltStats(db).Sub(st0)
	f.Writes, f.Done, f.Commits = perSec(int(done), elapsed), done, commits
	if done > 0 {
		f.Pages = float64(st.PagesWritten) / float64(done)
		f.Bytes = float64(st.PagesWritten*pageSize) / float64(done)
		f.PageTime = st.WriteTime / time.Duration(max(1, st.PagesWritten))
	}
	return f, nil
}

// LogEntry returns the bytes Bolt's Commit appends to the log for w (its
// records' JSON and its derived puts, encoded as one entry), so that the
// bench's ideal writes are the size of a real commit's.
func LogEntry(w *Write) ([]byte, error) {
	recs := make([][]byte, len(w.Records))
	for i, r := range w.Records {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		recs[i] = b
	}
	return encodeEntry(w.Conv, w.After+1, recs, w.Derived), nil
}
