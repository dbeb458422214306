// Package store keeps the gateway's state in one bbolt file: each
// conversation's log and snapshot, requests, secrets' ciphertexts, nonces
// and the gateway's sealed keys. Writes go through a group committer, so
// many writers waiting at once share one fsync, and a write that returns
// nil is durable. It is the one package that imports bbolt, so it also
// measures bbolt itself, without the store around it, for the bench's
// ceiling (MeasureRaw).
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
)

// Buckets the store keeps. Log records live in per-conversation buckets
// nested in Log.
const (
	Meta      = "meta"
	Convs     = "convs"
	Log       = "log"
	Requests  = "requests"
	Pending   = "pending"
	Secrets   = "secrets"
	Nonces    = "nonces"
	Proposals = "proposals"
	Programs  = "programs"
	ReqLog    = "reqlog"
	// Usage holds the request log's per-day counters (reqlog): one row of
	// counters (see Put.Add) per day, conversation, service and submitter.
	Usage = "usage"
	// ConvReqs indexes requests by conversation and submission seq:
	// key CONV/%016x(seq), value the request id.
	ConvReqs = "convreqs"
	// Seen holds the payload digest of every envelope accepted within the
	// freshness window (PROTOCOL 2): key the digest, value when it may be
	// forgotten (RFC 3339).
	Seen = "seen"
	// IDs holds the ids accepted once per server: "proposal/ID" and
	// "secret/ID", value the conversation.
	IDs = "ids"
	// Bans holds the management API's failed-check counts and bans, so a
	// ban survives a restart.
	Bans = "bans"
)

var allBuckets = []string{Meta, Convs, Log, Requests, Pending, Secrets, Nonces, Proposals, Programs, ReqLog, Usage, ConvReqs,
	Seen, IDs, Bans}

// ErrLocked is returned when another process holds the database.
var ErrLocked = errors.New("store: database is locked by another process")

// Store is an open bbolt database with its group committer.
type Store struct {
	db   *bolt.DB
	path string

	queue   chan *pending
	done    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.RWMutex
	closed  bool

	// WriteHook, when set, is called inside every write transaction; a
	// test uses it to inject a disk error.
	mu        sync.Mutex
	writeHook func() error
}

// Put is one key written (or deleted, when Value is nil) in a bucket.
//
// When Add is set the Put adds to counters instead, inside the write
// transaction: the value at Key is a row of counters (uvarints, see
// Counters; an absent key is a row of zeros), and Add[i] is added to the
// i-th, the row growing as needed. Value is then ignored. Because the add
// reads and writes in the transaction that commits it, writes committing
// concurrently never lose each other's counts.
type Put struct {
	Bucket string
	Key    string
	Value  []byte
	Add    []uint64
}

// Write is one atomic change: records appended to a conversation's log, its
// new snapshot, and other keys. All of it commits, or none of it.
type Write struct {
	Conv     string
	Records  []conversation.Record
	Snapshot []byte
	Puts     []Put

	records [][]byte // marshalled by Commit before queueing
}

type pending struct {
	w   *Write
	err chan error
}

// Open opens or creates the database at path, waiting at most timeout for
// another process's lock.
func Open(path string, timeout time.Duration) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (is another 'twokey serve' running on this data directory?)", ErrLocked, path)
		}
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// Create missing buckets, but write nothing when all exist: a start
	// that is refused later (a wrong master key) must leave the file as
	// it found it.
	missing := false
	_ = db.View(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			missing = missing || tx.Bucket([]byte(b)) == nil
		}
		return nil
	})
	if !missing {
		return newStore(db, path), nil
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare database %s: %w", path, err)
	}
	return newStore(db, path), nil
}

func newStore(db *bolt.DB, path string) *Store {
	s := &Store{db: db, path: path, queue: make(chan *pending, 4096), done: make(chan struct{})}
	s.wg.Add(1)
	go s.commitLoop()
	return s
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Stats are the database's counters since it was opened; the difference
// of two (Sub) is what happened between them.
type Stats struct {
	// PagesWritten is how many pages write transactions wrote to disk.
	PagesWritten int64
	// WriteTime is the time spent writing those pages and syncing them.
	WriteTime time.Duration
}

// Sub returns the counts in s that are not in old.
func (s Stats) Sub(old Stats) Stats {
	return Stats{PagesWritten: s.PagesWritten - old.PagesWritten, WriteTime: s.WriteTime - old.WriteTime}
}

// Stats returns the database's counters (bbolt's TxStats), for the bench
// to say what a durable commit costs on this disk.
func (s *Store) Stats() Stats { return boltStats(s.db) }

func boltStats(db *bolt.DB) Stats {
	st := db.Stats()
	return Stats{PagesWritten: st.TxStats.GetWrite(), WriteTime: st.TxStats.GetWriteTime()}
}

// SetWriteHook installs f to run inside every write transaction; an error
// from it aborts the transaction (fault injection in tests).
func (s *Store) SetWriteHook(f func() error) {
	s.mu.Lock()
	s.writeHook = f
	s.mu.Unlock()
}

// Close stops the committer after the writes already queued and closes
// the database.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	close(s.done)
	s.wg.Wait()
	return s.db.Close()
}

// Commit applies w durably. It returns once w is on disk, sharing the
// commit with whatever other writes are waiting.
func (s *Store) Commit(w *Write) error {
	w.records = make([][]byte, len(w.Records))
	for i, r := range w.Records {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		w.records[i] = b
	}
	p := &pending{w: w, err: make(chan error, 1)}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return twokey.Errorf(twokey.EUnavailable, "the server is shutting down; try again")
	}
	s.queue <- p
	s.closeMu.RUnlock()
	return <-p.err
}

const maxBatch = 512

func (s *Store) commitLoop() {
	defer s.wg.Done()
	batch := make([]*pending, 0, maxBatch)
	for {
		select {
		case p := <-s.queue:
			batch = append(batch[:0], p)
		case <-s.done:
			// Drain what was queued before Close.
			for {
				select {
				case p := <-s.queue:
					s.run([]*pending{p})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case p := <-s.queue:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		s.run(batch)
	}
}

// run commits a batch in one transaction; if that fails, each write is
// retried alone so that one bad write cannot fail its neighbours.
func (s *Store) run(batch []*pending) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, p := range batch {
			if err := s.apply(tx, p.w); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(batch) == 1 {
		for _, p := range batch {
			p.err <- wrapWriteErr(err)
		}
		return
	}
	for _, p := range batch {
		p.err <- wrapWriteErr(s.db.Update(func(tx *bolt.Tx) error { return s.apply(tx, p.w) }))
	}
}

func wrapWriteErr(err error) error {
	if err == nil {
		return nil
	}
	var te *twokey.Error
	if errors.As(err, &te) {
		return err
	}
	return &twokey.Error{Code: twokey.EUnavailable, Message: "the server could not save this durably (storage error); nothing was accepted, try again", Err: err}
}

func (s *Store) apply(tx *bolt.Tx, w *Write) error {
	s.mu.Lock()
	hook := s.writeHook
	s.mu.Unlock()
	if hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}
	if len(w.records) > 0 {
		lb, err := tx.Bucket([]byte(Log)).CreateBucketIfNotExists([]byte(w.Conv))
		if err != nil {
			return err
		}
		for i, r := range w.Records {
			if last := lastSeq(lb); r.Seq != last+1 {
				return fmt.Errorf("store: record %d of %s does not follow %d", r.Seq, w.Conv, last)
			}
			if err := lb.Put(seqKey(r.Seq), w.records[i]); err != nil {
				return err
			}
		}
	}
	if w.Snapshot != nil {
		if err := tx.Bucket([]byte(Convs)).Put([]byte(w.Conv), w.Snapshot); err != nil {
			return err
		}
	}
	for _, p := range w.Puts {
		b := tx.Bucket([]byte(p.Bucket))
		if b == nil {
			return fmt.Errorf("store: no bucket %q", p.Bucket)
		}
		var err error
		if p.Add != nil {
			err = addCounters(b, []byte(p.Key), p.Add)
		} else if p.Value == nil {
			err = b.Delete([]byte(p.Key))
		} else {
			err = b.Put([]byte(p.Key), p.Value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// addCounters adds add to the row of counters at key.
func addCounters(b *bolt.Bucket, key []byte, add []uint64) error {
	row, err := Counters(b.Get(key))
	if err != nil {
		return fmt.Errorf("store: counters %q: %w", key, err)
	}
	if len(row) < len(add) {
		row = append(row, make([]uint64, len(add)-len(row))...)
	}
	for i, n := range add {
		row[i] += n
	}
	out := make([]byte, 0, len(row)+8)
	for _, n := range row {
		out = binary.AppendUvarint(out, n)
	}
	return b.Put(key, out)
}

// Counters decodes a row of counters written by Put.Add (nil: none).
func Counters(v []byte) ([]uint64, error) {
	var row []uint64
	for len(v) > 0 {
		n, k := binary.Uvarint(v)
		if k <= 0 {
			return nil, errors.New("malformed counters")
		}
		row = append(row, n)
		v = v[k:]
	}
	return row, nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func lastSeq(b *bolt.Bucket) uint64 {
	k, _ := b.Cursor().Last()
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// Records returns up to limit records of conv after seq, ascending.
func (s *Store) Records(conv string, after uint64, limit int) ([]conversation.Record, error) {
	var out []conversation.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		lb := tx.Bucket([]byte(Log)).Bucket([]byte(conv))
		if lb == nil {
			return nil
		}
		c := lb.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var r conversation.Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("store: record %x of %s: %w", k, conv, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// LastSeq returns the seq of conv's last record.
func (s *Store) LastSeq(conv string) (uint64, error) {
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if lb := tx.Bucket([]byte(Log)).Bucket([]byte(conv)); lb != nil {
			n = lastSeq(lb)
		}
		return nil
	})
	return n, err
}

// Get returns a copy of the value at bucket/key, or nil.
func (s *Store) Get(bucket, key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return fmt.Errorf("store: no bucket %q", bucket)
		}
		if v := b.Get([]byte(key)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out, err
}

// GetAll returns copies of the values at keys of bucket, nil where a key
// is absent, read in one transaction.
func (s *Store) GetAll(bucket string, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return fmt.Errorf("store: no bucket %q", bucket)
		}
		for i, k := range keys {
			if v := b.Get([]byte(k)); v != nil {
				out[i] = append([]byte(nil), v...)
			}
		}
		return nil
	})
	return out, err
}

// ForEach calls fn with a copy of every key and value of bucket, in key order.
func (s *Store) ForEach(bucket string, fn func(k string, v []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return fmt.Errorf("store: no bucket %q", bucket)
		}
		return b.ForEach(func(k, v []byte) error {
			return fn(string(k), append([]byte(nil), v...))
		})
	})
}

// Put writes one key durably (through the committer).
func (s *Store) Put(bucket, key string, value []byte) error {
	return s.Commit(&Write{Puts: []Put{{Bucket: bucket, Key: key, Value: value}}})
}

// Scan calls fn with the keys and values of bucket in [from, to) (to ""
// has no upper bound), in key order, or last key first when reverse, until
// fn returns false. k and v are bbolt's own memory, valid only during fn:
// copy what you keep. fn must not call the store.
func (s *Store) Scan(bucket, from, to string, reverse bool, fn func(k, v []byte) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return fmt.Errorf("store: no bucket %q", bucket)
		}
		c := b.Cursor()
		lo, hi := []byte(from), []byte(to)
		if !reverse {
			for k, v := c.Seek(lo); k != nil && (to == "" || bytes.Compare(k, hi) < 0); k, v = c.Next() {
				if !fn(k, v) {
					return nil
				}
			}
			return nil
		}
		var k, v []byte
		if to == "" {
			k, v = c.Last()
		} else if k, v = c.Seek(hi); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.Compare(k, lo) >= 0; k, v = c.Prev() {
			if !fn(k, v) {
				return nil
			}
		}
		return nil
	})
}

// Reverse calls fn with copies of the keys and values of bucket that start
// with prefix, last key first, until fn returns false.
func (s *Store) Reverse(bucket, prefix string, fn func(k string, v []byte) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return fmt.Errorf("store: no bucket %q", bucket)
		}
		c := b.Cursor()
		// Seek past the prefix's range, then step back.
		end := append([]byte(prefix), 0xff)
		k, v := c.Seek(end)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Prev() {
			if !fn(string(k), append([]byte(nil), v...)) {
				return nil
			}
		}
		return nil
	})
}
