package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/twokey/twokey/conversation"
)

// TestCopyToAndMeasureIdeal: the copy is the store's file as of one
// moment, opens as a store with the same records, and the bench's ideal
// commit on it appends to a bucket of its own, leaving the rest alone.
func TestCopyToAndMeasureIdeal(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "a.db"))
	defer s.Close()
	for seq := uint64(1); seq <= 20; seq++ {
		if err := s.Commit(&Write{Conv: "c", After: seq - 1, Records: []conversation.Record{rec(seq)},
			Derived: []Put{{Bucket: Requests, Key: "r", Value: []byte("v")}}}); err != nil {
			t.Fatal(err)
		}
	}
	cp := filepath.Join(dir, "copy.db")
	if err := s.CopyTo(cp); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cp)
	if err != nil || fi.Size() == 0 {
		t.Fatalf("copy: %v, %v", fi, err)
	}

	value, err := LogEntry(&Write{Conv: "c", After: 20, Records: []conversation.Record{rec(21)}, Derived: []Put{{Bucket: Seen, Key: "k", Value: []byte("until")}}})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := decodeEntry(value, true); err != nil || e.first != 21 || len(e.records) != 1 || len(e.derived) != 1 {
		t.Fatalf("LogEntry decodes to %+v, %v", e, err)
	}
	f, err := MeasureIdeal(cp, 100*time.Millisecond, 8, value)
	if err != nil {
		t.Fatal(err)
	}
	if f.Writes <= 0 || f.Done <= 0 || f.Commits <= 0 || f.Commits > f.Done || f.Pages <= 0 || f.Bytes <= 0 || f.FileBytes != fi.Size() {
		t.Fatalf("ideal figures %+v (file %d bytes)", f, fi.Size())
	}

	db, err := bolt.Open(cp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(idealBucket))
		c := b.Cursor()
		want := uint64(1)
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if string(k) != string(seqKey(want)) || string(v) != string(value) {
				t.Fatalf("ideal key %x, want %x", k, seqKey(want))
			}
			want++
			n++
		}
		return nil
	})
	db.Close()
	if err != nil || n != f.Done {
		t.Fatalf("%d appends in the ideal bucket, %d acknowledged (%v)", n, f.Done, err)
	}

	// The store's own data is in the copy, untouched by the measure.
	c := open(t, cp)
	defer c.Close()
	recs, err := c.Records("c", 0, 100)
	if err != nil || len(recs) != 20 {
		t.Fatalf("copy holds %d records, %v", len(recs), err)
	}
	if v, err := c.Get(Requests, "r"); err != nil || string(v) != "v" {
		t.Fatalf("copy's derived value %q, %v", v, err)
	}
}
