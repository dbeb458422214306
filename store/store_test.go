package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
)

func open(t *testing.T, path string) *Bolt {
	t.Helper()
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func check(t *testing.T, s *Bolt) {
	t.Helper()
	if err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("db check: %v", err)
	}
}

func rec(seq uint64) conversation.Record {
	return conversation.Record{Seq: seq, Kind: "chat.message", Body: []byte(fmt.Sprintf(`{"n":%d}`, seq))}
}

func TestConcurrentCommitsAreAllDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	s := open(t, path)
	const convs, per = 16, 50
	var wg sync.WaitGroup
	for c := 0; c < convs; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			conv := fmt.Sprint("c", c)
			for i := uint64(1); i <= per; i++ {
				if err := s.Commit(&Write{Conv: conv, After: i - 1, Records: []conversation.Record{rec(i)},
					Derived: []Put{{Bucket: Convs, Key: conv, Value: []byte(fmt.Sprint(i))}},
					Puts:    []Put{{Bucket: Requests, Key: fmt.Sprint(conv, "/", i), Value: []byte("x")}}}); err != nil {
					t.Error(err)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	check(t, s)
	s.Close()
	s = open(t, path)
	defer s.Close()
	for c := 0; c < convs; c++ {
		conv := fmt.Sprint("c", c)
		recs, err := s.Records(conv, 0, 1000)
		if err != nil || len(recs) != per {
			t.Fatalf("%s: %d records after reopen, err %v", conv, len(recs), err)
		}
		for i, r := range recs {
			if r.Seq != uint64(i+1) {
				t.Fatalf("%s: record %d has seq %d", conv, i, r.Seq)
			}
		}
		snap, _ := s.Get(Convs, conv)
		if string(snap) != fmt.Sprint(per) {
			t.Fatalf("%s: snapshot %q", conv, snap)
		}
	}
	n := 0
	s.ForEach(Requests, func(string, []byte) error { n++; return nil })
	if n != convs*per {
		t.Fatalf("%d request keys, want %d", n, convs*per)
	}
}

func TestAGapInSeqIsRefusedAndNothingIsWritten(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "t.db"))
	defer s.Close()
	if err := s.Commit(&Write{Conv: "c", Records: []conversation.Record{rec(1)}}); err != nil {
		t.Fatal(err)
	}
	err := s.Commit(&Write{Conv: "c", After: 2, Records: []conversation.Record{rec(3)}, Puts: []Put{{Bucket: Meta, Key: "k", Value: []byte("v")}}})
	if err == nil {
		t.Fatal("a gap was accepted")
	}
	if v, _ := s.Get(Meta, "k"); v != nil {
		t.Fatal("a refused write left a put behind")
	}
	if n, _ := s.LastSeq("c"); n != 1 {
		t.Fatalf("last seq %d", n)
	}
}

func TestAWriteErrorFailsOnlyItsWrite(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "t.db"))
	defer s.Close()
	disk := errors.New("no space left on device")
	s.SetWriteHook(func() error { return disk })
	err := s.Commit(&Write{Conv: "c", Records: []conversation.Record{rec(1)}})
	if twokey.ErrorCode(err) != twokey.EUnavailable || !errors.Is(err, disk) {
		t.Fatalf("commit under a disk error: %v", err)
	}
	if n, _ := s.LastSeq("c"); n != 0 {
		t.Fatal("a failed commit left a record")
	}
	s.SetWriteHook(nil)
	if err := s.Commit(&Write{Conv: "c", Records: []conversation.Record{rec(1)}}); err != nil {
		t.Fatalf("commit after the disk recovered: %v", err)
	}
	check(t, s)
}

func TestCommitAfterCloseIsRefused(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "t.db"))
	s.Close()
	if err := s.Commit(&Write{Puts: []Put{{Bucket: Meta, Key: "k", Value: []byte("v")}}}); twokey.ErrorCode(err) != twokey.EUnavailable {
		t.Fatalf("commit after close: %v", err)
	}
}

func TestLockedDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	s := open(t, path)
	defer s.Close()
	start := time.Now()
	_, err := Open(path, 200*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("second open hung")
	}
}
