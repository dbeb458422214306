package store

// The Store's reads: the logs through the index, and keys, which see the
// derived state not yet in place.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/twokey/twokey/conversation"
)

// Records returns up to limit records of conv after seq, ascending.
func (s *Bolt) Records(conv string, after uint64, limit int) ([]conversation.Record, error) {
	if limit <= 0 {
		return nil, nil
	}
	s.mu.RLock()
	cl := s.logs[conv]
	var entries []uint64
	if cl != nil && after < cl.last {
		// The entry holding after+1: the last whose first record is at
		// or before it.
		i, found := slices.BinarySearch(cl.first, after+1)
		if !found {
			i = max(0, i-1)
		}
		entries = slices.Clone(cl.entry[i:min(len(cl.entry), i+limit)])
	}
	s.mu.RUnlock()
	if len(entries) == 0 {
		return nil, nil
	}
	var out []conversation.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket([]byte(bRecords))
		for _, n := range entries {
			v := rb.Get(seqKey(n))
			if v == nil {
				return fmt.Errorf("store: entry %d of %s is missing", n, conv)
			}
			e, err := decodeEntry(v, true)
			if err != nil {
				return fmt.Errorf("store: entry %d of %s: %w", n, conv, err)
			}
			for i, raw := range e.records {
				if e.first+uint64(i) <= after {
					continue
				}
				var r conversation.Record
				if err := json.Unmarshal(raw, &r); err != nil {
					return fmt.Errorf("store: record %d of %s: %w", e.first+uint64(i), conv, err)
				}
				out = append(out, r)
				if len(out) == limit {
					return nil
				}
			}
		}
		return nil
	})
	return out, err
}

// LastSeq returns the seq of conv's last record.
func (s *Bolt) LastSeq(conv string) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastSeq(conv), nil
}

// Watch sends conv's records after seq after as they are committed.
func (s *Bolt) Watch(ctx context.Context, conv string, after uint64) <-chan []conversation.Record {
	out := make(chan []conversation.Record, 16)
	go func() {
		defer close(out)
		for {
			s.mu.RLock()
			wake := s.notify
			s.mu.RUnlock()
			recs, err := s.Records(conv, after, 512)
			if err != nil {
				return
			}
			if len(recs) > 0 {
				select {
				case out <- recs:
					after = recs[len(recs)-1].Seq
					continue
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
	}()
	return out
}

// derived returns the value of bucket/key not yet in place, and whether
// there is one.
func (s *Bolt) derived(bucket, key string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.overlay[bucket][key]
	return v, ok
}

// settle writes a checkpoint first when bucket has derived values not in
// place, so that a scan of it sees them.
func (s *Bolt) settle(bucket string) error {
	s.mu.RLock()
	n := len(s.overlay[bucket])
	s.mu.RUnlock()
	if n == 0 {
		return nil
	}
	return s.Checkpoint()
}

// Get returns a copy of the value at bucket/key, or nil.
func (s *Bolt) Get(bucket, key string) ([]byte, error) {
	if v, ok := s.derived(bucket, key); ok {
		return bytes.Clone(v), nil
	}
	var out []byte
	err := s.view(bucket, func(b *bolt.Bucket) error {
		if v := b.Get([]byte(key)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out, err
}

// GetAll returns copies of the values at keys of bucket, nil where a key
// is absent, as of one moment.
func (s *Bolt) GetAll(bucket string, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.overlay[bucket]
	err := s.view(bucket, func(b *bolt.Bucket) error {
		for i, k := range keys {
			if v, ok := m[k]; ok {
				out[i] = bytes.Clone(v)
			} else if v := b.Get([]byte(k)); v != nil {
				out[i] = append([]byte(nil), v...)
			}
		}
		return nil
	})
	return out, err
}

// ForEach calls fn with a copy of every key and value of bucket, in key order.
func (s *Bolt) ForEach(bucket string, fn func(k string, v []byte) error) error {
	if err := s.settle(bucket); err != nil {
		return err
	}
	return s.view(bucket, func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			return fn(string(k), append([]byte(nil), v...))
		})
	})
}

// Put writes one key durably (through the committer).
func (s *Bolt) Put(bucket, key string, value []byte) error {
	return s.Commit(&Write{Puts: []Put{{Bucket: bucket, Key: key, Value: value}}})
}

// Scan calls fn with the keys and values of bucket in [from, to), in key
// order or reversed, until fn returns false.
func (s *Bolt) Scan(bucket, from, to string, reverse bool, fn func(k, v []byte) bool) error {
	if err := s.settle(bucket); err != nil {
		return err
	}
	return s.view(bucket, func(b *bolt.Bucket) error {
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
func (s *Bolt) Reverse(bucket, prefix string, fn func(k string, v []byte) bool) error {
	if err := s.settle(bucket); err != nil {
		return err
	}
	return s.view(bucket, func(b *bolt.Bucket) error {
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

// view runs fn on bucket in a read transaction.
func (s *Bolt) view(bucket string, fn func(b *bolt.Bucket) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return fmt.Errorf("store: no bucket %q", bucket)
		}
		return fn(b)
	})
}
