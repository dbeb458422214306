package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/twokey/twokey"
)

// Bolt is the Store on one bbolt file, written log-first, the way etcd
// uses bbolt:
//
//   - The records of every conversation are appended to one bucket,
//     "records", keyed by a global entry number: a commit's records are one
//     entry, and a batch of commits dirties a few neighbouring pages at the
//     end of one tree, whatever conversations it touches.
//   - Each entry also carries the state derived from its records
//     (Write.Derived: the conversation's snapshot when it changed, the
//     requests' state, the replay window). That state is kept in memory
//     and served from there, and reaches its buckets at a checkpoint, every
//     CheckpointRecords records, CheckpointEvery, or on Close; the
//     conversations' indexes (conversation seq -> entry) are written then
//     too. On open, the entries after the last checkpoint are replayed.
//   - One committer takes whatever writes are queued, commits them in one
//     transaction with one fsync, and takes the next batch as soon as that
//     commit ends: no timer, so a lone writer waits for one fsync only.
//
// A Commit that returns nil is durable: its entry is on disk, and with it
// everything derived from it.
type Bolt struct {
	db       *bolt.DB
	path     string
	pageSize int64
	opts     Options

	queue   chan *pending
	done    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.RWMutex
	closed  bool

	hookMu    sync.Mutex
	writeHook func() error

	// mu guards what readers share with the committer: the conversations'
	// indexes, the derived state not yet in place, and notify.
	mu      sync.RWMutex
	logs    map[string]*convLog
	overlay map[string]map[string][]byte // bucket -> key -> value (nil: deleted)
	notify  chan struct{}                // closed at each commit of records

	// The committer's own.
	entry     uint64    // the last entry written
	newIdx    []idxPut  // index keys not yet written
	sinceCkpt int       // records since the last checkpoint
	ovBytes   int       // bytes of derived state not yet in place
	lastCkpt  time.Time // when the last checkpoint was written
	legacy    bool      // the file waits for Upgrade

	commits, checkpoints atomic.Int64
}

// Options tune a Bolt.
type Options struct {
	// Timeout bounds the wait for another process's lock.
	Timeout time.Duration
	// CheckpointRecords is how many records may follow the last
	// checkpoint before the next is written (default 8192); it bounds the
	// replay at open. CheckpointBytes bounds the derived state held in
	// memory until then (default 16 MiB).
	CheckpointRecords int
	CheckpointBytes   int
	// CheckpointEvery writes a checkpoint when this long has passed since
	// the last one and something is waiting (default 5 s).
	CheckpointEvery time.Duration
}

func (o *Options) defaults() {
	if o.CheckpointRecords <= 0 {
		o.CheckpointRecords = 8192
	}
	if o.CheckpointBytes <= 0 {
		o.CheckpointBytes = 16 << 20
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 5 * time.Second
	}
}

// The buckets of the log itself, which only this file reads.
const (
	bRecords   = "records" // entry number -> entry
	bLogIdx    = "logidx"  // conv "/" first seq (8 bytes) -> entry number (8 bytes)
	bLegacyLog = "log"     // before the log-first layout: one bucket of records per conversation
)

// Keys in Meta that the store keeps.
const (
	metaLayout     = "store.layout"     // "2": log-first
	metaCheckpoint = "store.checkpoint" // the last entry whose derived state is in place
	layoutLogFirst = "2"
)

var allBuckets = []string{Meta, Webhooks, Outbox, Deliveries, Convs, Requests, Pending, Secrets, Nonces, Programs, ReqLog, Usage, ConvReqs,
	Seen, IDs, Bans, Claims, bRecords, bLogIdx}

// convLog is one conversation's index: its entries, with the seq of each
// one's first record.
type convLog struct {
	last  uint64
	first []uint64
	entry []uint64
}

type idxPut struct {
	conv         string
	first, entry uint64
}

type pending struct {
	w          *Write
	enc        []byte // the entry, encoded by Commit before queueing
	checkpoint bool   // a request for a checkpoint now, not a write
	err        chan error
}

// Open opens or creates the database at path, waiting at most timeout for
// another process's lock.
func Open(path string, timeout time.Duration) (*Bolt, error) {
	return OpenOptions(path, Options{Timeout: timeout})
}

// OpenOptions opens or creates the database at path. A file left by a
// crash has its derived state replayed from the log; a file written before
// the log-first layout waits for Upgrade (Legacy).
func OpenOptions(path string, o Options) (*Bolt, error) {
	o.defaults()
	// The freelist is written at each commit (bbolt's default): without
	// it (NoFreelistSync) bbolt rebuilds it at open by reading every page
	// of the file, which costs a restart more than its pages cost commits.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.Timeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (is another 'twokey serve' running on this data directory?)", ErrLocked, path)
		}
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &Bolt{db: db, path: path, opts: o, pageSize: int64(db.Info().PageSize),
		queue: make(chan *pending, 4096), done: make(chan struct{}),
		logs: map[string]*convLog{}, overlay: map[string]map[string][]byte{}, notify: make(chan struct{}),
		lastCkpt: time.Now()}
	if err := s.prepare(); err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare database %s: %w", path, err)
	}
	s.wg.Add(1)
	go s.commitLoop()
	return s, nil
}

// prepare creates missing buckets, loads the conversations' indexes and
// replays the entries after the last checkpoint. A file that needs none of
// it is not written: a start that is refused later (a wrong master key)
// leaves it as it found it. A file of the layout before the log-first one
// is left alone until Upgrade.
func (s *Bolt) prepare() error {
	missing := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			missing = missing || tx.Bucket([]byte(b)) == nil
		}
		s.legacy = tx.Bucket([]byte(bLegacyLog)) != nil
		return nil
	})
	if s.legacy {
		return nil
	}
	if missing {
		if err := s.createBuckets(); err != nil {
			return err
		}
	}
	if err := s.load(); err != nil {
		return err
	}
	if s.sinceCkpt > 0 || len(s.newIdx) > 0 {
		return s.checkpoint()
	}
	return nil
}

func (s *Bolt) createBuckets() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		if tx.Bucket([]byte(bLegacyLog)) == nil {
			return tx.Bucket([]byte(Meta)).Put([]byte(metaLayout), []byte(layoutLogFirst))
		}
		return nil
	})
}

// Legacy reports whether the file is of the layout before the log-first
// one and waits for Upgrade: until then only its other buckets (the
// gateway's sealed keys in Meta) may be read.
func (s *Bolt) Legacy() bool { return s.legacy }

// Upgrade converts a file of the layout before the log-first one (see
// migrate) and loads it. It does nothing to a file of the current layout.
// Call it before anything writes a record: the daemon calls it once the
// master key has opened the vault, so that a start refused for a wrong key
// leaves an old file as it was.
func (s *Bolt) Upgrade() error {
	if !s.legacy {
		return nil
	}
	if err := s.createBuckets(); err != nil {
		return err
	}
	if err := s.migrate(); err != nil {
		return fmt.Errorf("convert %s to the log-first layout: %w", s.path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); err != nil {
		return err
	}
	s.legacy = false
	return nil
}

// load reads the conversations' indexes and replays the entries after the
// last checkpoint into memory.
func (s *Bolt) load() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var ckpt uint64
		if v := tx.Bucket([]byte(Meta)).Get([]byte(metaCheckpoint)); len(v) == 8 {
			ckpt = binary.BigEndian.Uint64(v)
		}
		err := tx.Bucket([]byte(bLogIdx)).ForEach(func(k, v []byte) error {
			if len(k) < 9 || len(v) != 8 {
				return fmt.Errorf("malformed log index key %q", k)
			}
			conv := string(k[:len(k)-9])
			first := binary.BigEndian.Uint64(k[len(k)-8:])
			s.index(conv, first, binary.BigEndian.Uint64(v), 0)
			return nil
		})
		if err != nil {
			return err
		}
		rb := tx.Bucket([]byte(bRecords))
		c := rb.Cursor()
		if k, _ := c.Last(); len(k) == 8 {
			s.entry = binary.BigEndian.Uint64(k)
		}
		// The indexes hold every entry up to the checkpoint; each
		// conversation's last seq is its last entry's first record plus
		// that entry's count, read once per conversation.
		for conv, cl := range s.logs {
			v := rb.Get(seqKey(cl.entry[len(cl.entry)-1]))
			if v == nil {
				return fmt.Errorf("conversation %s: its log index names entry %d, which is missing", conv, cl.entry[len(cl.entry)-1])
			}
			e, err := decodeEntry(v, false)
			if err != nil {
				return fmt.Errorf("entry %d: %w", cl.entry[len(cl.entry)-1], err)
			}
			cl.last = e.first + uint64(e.count) - 1
		}
		for k, v := c.Seek(seqKey(ckpt + 1)); k != nil; k, v = c.Next() {
			n := binary.BigEndian.Uint64(k)
			e, err := decodeEntry(v, false)
			if err != nil {
				return fmt.Errorf("entry %d: %w", n, err)
			}
			if e.count > 0 {
				if last := s.lastSeq(e.conv); e.first != last+1 {
					return fmt.Errorf("entry %d: conversation %s's records start at %d after %d", n, e.conv, e.first, last)
				}
				s.index(e.conv, e.first, n, uint64(e.count))
				s.newIdx = append(s.newIdx, idxPut{conv: e.conv, first: e.first, entry: n})
				s.sinceCkpt += e.count
			}
			for _, p := range e.derived {
				s.derive(p.Bucket, p.Key, bytes.Clone(p.Value), p.Value == nil)
			}
		}
		return nil
	})
}

// index notes entry n of conv, whose records start at first; n records
// (0: unknown yet) set the conversation's last seq.
func (s *Bolt) index(conv string, first, n, count uint64) {
	cl := s.logs[conv]
	if cl == nil {
		cl = &convLog{}
		s.logs[conv] = cl
	}
	cl.first = append(cl.first, first)
	cl.entry = append(cl.entry, n)
	if count > 0 {
		cl.last = first + count - 1
	}
}

func (s *Bolt) lastSeq(conv string) uint64 {
	if cl := s.logs[conv]; cl != nil {
		return cl.last
	}
	return 0
}

// derive keeps a derived value in memory until the next checkpoint.
func (s *Bolt) derive(bucket, key string, v []byte, del bool) {
	m := s.overlay[bucket]
	if m == nil {
		m = map[string][]byte{}
		s.overlay[bucket] = m
	}
	if del {
		v = nil
	}
	m[key] = v
	s.ovBytes += len(key) + len(v) + 32
}

// Path returns the database file's path.
func (s *Bolt) Path() string { return s.path }

// Stats returns the database's counters (bbolt's TxStats and the
// committer's), for the bench to say what a durable commit costs.
func (s *Bolt) Stats() Stats {
	st := boltStats(s.db)
	st.BytesWritten = st.PagesWritten * s.pageSize
	st.Commits, st.Checkpoints = s.commits.Load(), s.checkpoints.Load()
	return st
}

func boltStats(db *bolt.DB) Stats {
	st := db.Stats()
	return Stats{PagesWritten: st.TxStats.GetWrite(), WriteTime: st.TxStats.GetWriteTime()}
}

// SetWriteHook installs f to run inside every write transaction; an error
// from it aborts the transaction (fault injection in tests).
func (s *Bolt) SetWriteHook(f func() error) {
	s.hookMu.Lock()
	s.writeHook = f
	s.hookMu.Unlock()
}

func (s *Bolt) hook() error {
	s.hookMu.Lock()
	f := s.writeHook
	s.hookMu.Unlock()
	if f != nil {
		return f()
	}
	return nil
}

// Close stops the committer after the writes already queued, writes a
// checkpoint (so that the next open replays nothing) and closes the file.
func (s *Bolt) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	close(s.done)
	s.wg.Wait()
	err := s.checkpoint()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Commit applies w durably. It returns once w is on disk, sharing the
// commit with whatever other writes are waiting.
func (s *Bolt) Commit(w *Write) error {
	p := &pending{w: w, err: make(chan error, 1)}
	if len(w.Records) > 0 || len(w.Derived) > 0 {
		recs := make([][]byte, len(w.Records))
		for i, r := range w.Records {
			if r.Seq != w.After+uint64(i)+1 {
				return fmt.Errorf("store: record %d of %s does not follow %d", r.Seq, w.Conv, w.After+uint64(i))
			}
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			recs[i] = b
		}
		for _, d := range w.Derived {
			if d.Add != nil {
				return fmt.Errorf("store: a derived put cannot add (%s/%s)", d.Bucket, d.Key)
			}
		}
		p.enc = encodeEntry(w.Conv, w.After+1, recs, w.Derived)
	}
	return s.send(p)
}

func (s *Bolt) send(p *pending) error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return twokey.Errorf(twokey.EUnavailable, "the server is shutting down; try again")
	}
	s.queue <- p
	s.closeMu.RUnlock()
	return <-p.err
}

// Checkpoint moves the derived state into its buckets now.
func (s *Bolt) Checkpoint() error {
	return s.send(&pending{checkpoint: true, err: make(chan error, 1)})
}

const maxBatch = 512

func (s *Bolt) commitLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.opts.CheckpointEvery)
	defer tick.Stop()
	batch := make([]*pending, 0, maxBatch)
	for {
		select {
		case p := <-s.queue:
			batch = append(batch[:0], p)
		case <-tick.C:
			if s.sinceCkpt > 0 || len(s.newIdx) > 0 || s.ovBytes > 0 {
				_ = s.checkpoint() // on failure, the next one tries again
			}
			continue
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

// run commits a batch of writes in one transaction; if that fails, each
// write is retried alone so that one bad write cannot fail its
// neighbours. Then it writes a checkpoint when one is due or asked for.
func (s *Bolt) run(batch []*pending) {
	writes := make([]*pending, 0, len(batch))
	var asks []*pending
	for _, p := range batch {
		if p.checkpoint {
			asks = append(asks, p)
		} else {
			writes = append(writes, p)
		}
	}
	if len(writes) > 0 {
		if err := s.txn(writes); err == nil || len(writes) == 1 {
			for _, p := range writes {
				p.err <- wrapWriteErr(err)
			}
		} else {
			for _, p := range writes {
				p.err <- wrapWriteErr(s.txn([]*pending{p}))
			}
		}
	}
	due := s.sinceCkpt >= s.opts.CheckpointRecords || s.ovBytes >= s.opts.CheckpointBytes ||
		(s.sinceCkpt > 0 && time.Since(s.lastCkpt) >= s.opts.CheckpointEvery)
	if len(asks) > 0 || due {
		err := s.checkpoint()
		for _, p := range asks {
			p.err <- wrapWriteErr(err)
		}
	}
}

// txn commits writes in one transaction and, once it is durable, makes
// them visible.
func (s *Bolt) txn(writes []*pending) error {
	next := s.entry
	last := map[string]uint64{}
	placed := make([]uint64, len(writes))
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := s.hook(); err != nil {
			return err
		}
		rb := tx.Bucket([]byte(bRecords))
		rb.FillPercent = 1 // appends only: fill each page
		for i, p := range writes {
			w := p.w
			if len(w.Records) > 0 {
				cur, ok := last[w.Conv]
				if !ok {
					cur = s.lastSeq(w.Conv)
				}
				if cur != w.After {
					return fmt.Errorf("%w: %s ends at %d, the write follows %d", ErrConflict, w.Conv, cur, w.After)
				}
				last[w.Conv] = w.After + uint64(len(w.Records))
			}
			for _, k := range w.IfAbsent {
				b := tx.Bucket([]byte(k.Bucket))
				if b == nil {
					return fmt.Errorf("store: no bucket %q", k.Bucket)
				}
				if v, ok := s.derived(k.Bucket, k.Key); (ok && v != nil) || (!ok && b.Get([]byte(k.Key)) != nil) {
					return fmt.Errorf("%w: %s/%s exists", ErrConflict, k.Bucket, k.Key)
				}
			}
			if p.enc != nil {
				next++
				if err := rb.Put(seqKey(next), p.enc); err != nil {
					return err
				}
				placed[i] = next
			}
			if err := applyPuts(tx, w.Puts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.commits.Add(1)
	s.mu.Lock()
	s.entry = next
	records := false
	for i, p := range writes {
		w := p.w
		if len(w.Records) > 0 {
			records = true
			s.index(w.Conv, w.After+1, placed[i], uint64(len(w.Records)))
			s.newIdx = append(s.newIdx, idxPut{conv: w.Conv, first: w.After + 1, entry: placed[i]})
			s.sinceCkpt += len(w.Records)
		}
		for _, d := range w.Derived {
			s.derive(d.Bucket, d.Key, d.Value, d.Value == nil)
		}
		// A put in place supersedes a derived value of the same key that
		// is not in place yet.
		for _, d := range w.Puts {
			if m := s.overlay[d.Bucket]; m != nil && d.Add == nil {
				if _, ok := m[d.Key]; ok {
					m[d.Key] = d.Value
				}
			}
		}
	}
	if records {
		close(s.notify)
		s.notify = make(chan struct{})
	}
	s.mu.Unlock()
	return nil
}

func applyPuts(tx *bolt.Tx, puts []Put) error {
	for _, p := range puts {
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

// checkpoint writes the derived state held in memory into its buckets and
// the new index keys, and notes the last entry they cover. Called by the
// committer (or before it starts, or after it ends). When it fails,
// nothing is lost: the state stays in memory and in the log, and the next
// checkpoint writes it.
func (s *Bolt) checkpoint() error {
	s.mu.RLock()
	overlay := s.overlay
	s.mu.RUnlock()
	if len(overlay) == 0 && len(s.newIdx) == 0 && s.sinceCkpt == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := s.hook(); err != nil {
			return err
		}
		for _, name := range sortedKeys(overlay) {
			b := tx.Bucket([]byte(name))
			if b == nil {
				return fmt.Errorf("store: no bucket %q", name)
			}
			m := overlay[name]
			for _, k := range sortedKeys(m) {
				var err error
				if v := m[k]; v == nil {
					err = b.Delete([]byte(k))
				} else {
					err = b.Put([]byte(k), v)
				}
				if err != nil {
					return err
				}
			}
		}
		ib := tx.Bucket([]byte(bLogIdx))
		for _, x := range s.newIdx {
			if err := ib.Put(idxKey(x.conv, x.first), seqKey(x.entry)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(Meta)).Put([]byte(metaCheckpoint), seqKey(s.entry))
	})
	if err != nil {
		return err
	}
	s.checkpoints.Add(1)
	s.mu.Lock()
	s.overlay = map[string]map[string][]byte{}
	s.mu.Unlock()
	s.newIdx, s.sinceCkpt, s.ovBytes, s.lastCkpt = nil, 0, 0, time.Now()
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func idxKey(conv string, first uint64) []byte {
	k := make([]byte, 0, len(conv)+9)
	k = append(k, conv...)
	k = append(k, '/')
	return binary.BigEndian.AppendUint64(k, first)
}

func wrapWriteErr(err error) error {
	if err == nil {
		return nil
	}
	var te *twokey.Error
	if errors.As(err, &te) || errors.Is(err, ErrConflict) {
		return err
	}
	return &twokey.Error{Code: twokey.EUnavailable, Message: "the server could not save this durably (storage error); nothing was accepted, try again", Err: err}
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

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

var _ Store = (*Bolt)(nil)
