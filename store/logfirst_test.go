package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/twokey/twokey/conversation"
)

// crash stops s as a kill would: the committer ends and the file closes
// without the checkpoint Close writes.
func (s *Bolt) crash() {
	s.closeMu.Lock()
	s.closed = true
	s.closeMu.Unlock()
	close(s.done)
	s.wg.Wait()
	s.db.Close()
}

// inPlace reads bucket/key from the file itself, past the derived state
// held in memory.
func inPlace(t *testing.T, s *Bolt, bucket, key string) []byte {
	t.Helper()
	var out []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket([]byte(bucket)).Get([]byte(key)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func lazy(t *testing.T, path string) *Bolt {
	t.Helper()
	s, err := OpenOptions(path, Options{Timeout: time.Second, CheckpointRecords: 1 << 30, CheckpointEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDerivedStateIsReadAtOnceAndReplayedAfterACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	s := lazy(t, path)
	for i := uint64(1); i <= 20; i++ {
		err := s.Commit(&Write{Conv: "c", After: i - 1, Records: []conversation.Record{rec(i)},
			Derived: []Put{{Bucket: Requests, Key: "r", Value: fmt.Appendf(nil, "v%d", i)},
				{Bucket: Seen, Key: fmt.Sprint("d", i), Value: []byte("x")}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(&Write{Conv: "c", After: 20, Records: []conversation.Record{rec(21)},
		Derived: []Put{{Bucket: Seen, Key: "d1"}}}); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get(Requests, "r"); string(v) != "v20" {
		t.Fatalf("derived value read back %q, want v20", v)
	}
	if v, _ := s.Get(Seen, "d1"); v != nil {
		t.Fatalf("a derived delete still reads %q", v)
	}
	if v := inPlace(t, s, Requests, "r"); v != nil {
		t.Fatalf("derived state was written in place before a checkpoint: %q", v)
	}
	s.crash()

	s = lazy(t, path)
	defer s.Close()
	if v := inPlace(t, s, Requests, "r"); string(v) != "v20" {
		t.Fatalf("after the crash the replayed value in place is %q, want v20", v)
	}
	if v, _ := s.Get(Seen, "d1"); v != nil {
		t.Fatalf("after the crash a deleted key reads %q", v)
	}
	if v, _ := s.Get(Seen, "d2"); string(v) != "x" {
		t.Fatalf("after the crash d2 reads %q", v)
	}
	recs, err := s.Records("c", 0, 100)
	if err != nil || len(recs) != 21 {
		t.Fatalf("%d records after the crash, %v", len(recs), err)
	}
	if err := s.Commit(&Write{Conv: "c", After: 21, Records: []conversation.Record{rec(22)}}); err != nil {
		t.Fatalf("append after the replay: %v", err)
	}
	check(t, s)
}

func TestACheckpointEveryNRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	s, err := OpenOptions(path, Options{Timeout: time.Second, CheckpointRecords: 10, CheckpointEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 25; i++ {
		if err := s.Commit(&Write{Conv: "c", After: i - 1, Records: []conversation.Record{rec(i)},
			Derived: []Put{{Bucket: Requests, Key: fmt.Sprint("r", i), Value: []byte("v")}}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Stats().Checkpoints; n != 2 {
		t.Fatalf("%d checkpoints after 25 records, every 10; want 2", n)
	}
	if v := inPlace(t, s, Requests, "r20"); string(v) != "v" {
		t.Fatalf("r20 is not in place after the second checkpoint: %q", v)
	}
	if v := inPlace(t, s, Requests, "r21"); v != nil {
		t.Fatal("r21 is in place before its checkpoint")
	}
	s.crash()
	s, err = OpenOptions(path, Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 1; i <= 25; i++ {
		if v, _ := s.Get(Requests, fmt.Sprint("r", i)); string(v) != "v" {
			t.Fatalf("r%d after reopen: %q", i, v)
		}
	}
	recs, _ := s.Records("c", 7, 5)
	if len(recs) != 5 || recs[0].Seq != 8 || recs[4].Seq != 12 {
		t.Fatalf("records after 7, limit 5: %v", seqs(recs))
	}
}

func seqs(recs []conversation.Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

func TestAnAppendCommitsOnlyWhereTheWriterSawTheLog(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "t.db"))
	defer s.Close()
	if err := s.Commit(&Write{Conv: "c", After: 0, Records: []conversation.Record{rec(1), rec(2)}}); err != nil {
		t.Fatal(err)
	}
	// A second writer that read the log at 1 numbers its record 2.
	err := s.Commit(&Write{Conv: "c", After: 1, Records: []conversation.Record{rec(2)},
		Derived: []Put{{Bucket: Requests, Key: "k", Value: []byte("v")}}, Puts: []Put{{Bucket: Meta, Key: "k", Value: []byte("v")}}})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("a stale append: %v, want ErrConflict", err)
	}
	if v, _ := s.Get(Requests, "k"); v != nil {
		t.Fatal("a refused append left derived state")
	}
	if v, _ := s.Get(Meta, "k"); v != nil {
		t.Fatal("a refused append left a put")
	}
	if n, _ := s.LastSeq("c"); n != 2 {
		t.Fatalf("last seq %d, want 2", n)
	}
}

func TestWatchSendsEveryRecordInOrder(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "t.db"))
	defer s.Close()
	if err := s.Commit(&Write{Conv: "c", Records: []conversation.Record{rec(1)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := s.Watch(ctx, "c", 0)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := uint64(2); i <= 40; i++ {
			if err := s.Commit(&Write{Conv: "c", After: i - 1, Records: []conversation.Record{rec(i)}}); err != nil {
				t.Error(err)
				return
			}
			// Another conversation's records never reach this watch.
			if err := s.Commit(&Write{Conv: "other", After: i - 2, Records: []conversation.Record{rec(i - 1)}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	want := uint64(1)
	timeout := time.After(10 * time.Second)
	for want <= 40 {
		select {
		case recs := <-ch:
			for _, r := range recs {
				if r.Seq != want {
					t.Fatalf("watch sent %d, want %d", r.Seq, want)
				}
				want++
			}
		case <-timeout:
			t.Fatalf("watch stopped at %d", want)
		}
	}
	cancel()
	for range ch { // closed once ctx ends
	}
	<-wrote
}

func TestAScanSeesDerivedStateAndAPutInPlaceWins(t *testing.T) {
	s := lazy(t, filepath.Join(t.TempDir(), "t.db"))
	defer s.Close()
	if err := s.Commit(&Write{Conv: "c", Records: []conversation.Record{rec(1)},
		Derived: []Put{{Bucket: ConvReqs, Key: "c/1", Value: []byte("a")}, {Bucket: ConvReqs, Key: "c/2", Value: []byte("b")},
			{Bucket: Nonces, Key: "n", Value: []byte("derived")}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(Nonces, "n", []byte("in place")); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.Reverse(ConvReqs, "c/", func(k string, v []byte) bool { got = append(got, k+"="+string(v)); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"c/2=b", "c/1=a"}) {
		t.Fatalf("reverse scan saw %v", got)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get(Nonces, "n"); string(v) != "in place" {
		t.Fatalf("after a checkpoint the key reads %q: the older derived value overwrote a later put", v)
	}
}

// legacy writes a file in the layout before the log-first one: a bucket of
// records per conversation, nested in "log".
func legacy(t *testing.T, path string, convs map[string]int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{Meta, Convs, bLegacyLog, Requests, Pending, Secrets, Nonces, Proposals, Programs, ReqLog, Usage, ConvReqs, Seen, IDs, Bans} {
			if _, err := tx.CreateBucket([]byte(b)); err != nil {
				return err
			}
		}
		for conv, n := range convs {
			lb, err := tx.Bucket([]byte(bLegacyLog)).CreateBucket([]byte(conv))
			if err != nil {
				return err
			}
			for i := uint64(1); i <= uint64(n); i++ {
				b, _ := json.Marshal(rec(i))
				if err := lb.Put(seqKey(i), b); err != nil {
					return err
				}
			}
			if err := tx.Bucket([]byte(Convs)).Put([]byte(conv), []byte("snap")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAFileOfTheOldLayoutIsConverted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	convs := map[string]int{"a": 150, "b": 1, "c": 64}
	legacy(t, path, convs)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	if !s.Legacy() {
		t.Fatal("an old file does not read as one")
	}
	// Until Upgrade, nothing is written: a start refused for a wrong
	// master key leaves the old file as it was.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("opening and closing an old file without Upgrade changed it")
	}
	s = open(t, path)
	if err := s.Upgrade(); err != nil {
		t.Fatal(err)
	}
	for conv, n := range convs {
		recs, err := s.Records(conv, 0, 1000)
		if err != nil || len(recs) != n {
			t.Fatalf("%s: %d records after the conversion, want %d (%v)", conv, len(recs), n, err)
		}
		for i, r := range recs {
			if r.Seq != uint64(i+1) || string(r.Body) != fmt.Sprintf(`{"n":%d}`, i+1) {
				t.Fatalf("%s: record %d reads %+v", conv, i+1, r)
			}
		}
		if v, _ := s.Get(Convs, conv); string(v) != "snap" {
			t.Fatalf("%s: snapshot %q", conv, v)
		}
	}
	if err := s.Commit(&Write{Conv: "a", After: 150, Records: []conversation.Record{rec(151)}}); err != nil {
		t.Fatalf("append after the conversion: %v", err)
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bLegacyLog)) != nil {
			t.Error("the old log bucket is still there")
		}
		if v := tx.Bucket([]byte(Meta)).Get([]byte(metaLayout)); string(v) != layoutLogFirst {
			t.Errorf("layout %q", v)
		}
		return nil
	})
	check(t, s)
	s.Close()
	s = open(t, path)
	defer s.Close()
	if recs, _ := s.Records("a", 149, 10); len(recs) != 2 || recs[1].Seq != 151 {
		t.Fatalf("after reopening: %v", seqs(recs))
	}
}

func TestAGapInAnOldLogStopsTheConversion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	legacy(t, path, map[string]int{"a": 3})
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bLegacyLog)).Bucket([]byte("a")).Delete(seqKey(2)) })
	db.Close()
	s := open(t, path)
	defer s.Close()
	if err := s.Upgrade(); err == nil {
		t.Fatal("a log with a gap was converted")
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry("c", 1, [][]byte{[]byte(`{"seq":1}`)}, []Put{{Bucket: Requests, Key: "k", Value: []byte("v")}, {Bucket: Seen, Key: "d"}}))
	f.Add(encodeEntry("", 0, nil, nil))
	f.Add([]byte{1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b, true)
		if err != nil {
			return
		}
		again := encodeEntry(e.conv, e.first, e.records, e.derived)
		e2, err := decodeEntry(again, true)
		if err != nil || e2.conv != e.conv || e2.first != e.first || len(e2.records) != len(e.records) || len(e2.derived) != len(e.derived) {
			t.Fatalf("an entry does not survive a round trip: %v", err)
		}
	})
}
