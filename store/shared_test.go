package store

// One suite, two backends: what every Store promises, run on a bbolt file
// and on a real etcd cluster in-process.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/internal/etcdtest"
)

// backends returns a fresh store of each kind; each is closed at cleanup.
func backends(t *testing.T) map[string]func(t *testing.T) Store {
	var once sync.Once
	var cluster *etcdtest.Cluster
	n := 0
	return map[string]func(t *testing.T) Store{
		"bolt": func(t *testing.T) Store {
			s := open(t, filepath.Join(t.TempDir(), "t.db"))
			t.Cleanup(func() { s.Close() })
			return s
		},
		"etcd": func(t *testing.T) Store {
			once.Do(func() { cluster = etcdtest.Start(t, 1) })
			n++
			s := openEtcdTest(t, cluster, fmt.Sprintf("/t%d/", n), "node-a")
			return s
		},
	}
}

func openEtcdTest(t *testing.T, c *etcdtest.Cluster, prefix, node string) *Etcd {
	t.Helper()
	s, err := OpenEtcd(EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix, Node: node, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func eachBackend(t *testing.T, fn func(t *testing.T, s Store)) {
	for _, name := range []string{"bolt", "etcd"} {
		mk := backends(t)[name]
		t.Run(name, func(t *testing.T) { fn(t, mk(t)) })
	}
}

func TestSuiteAppendComparesTheLastSeq(t *testing.T) {
	eachBackend(t, func(t *testing.T, s Store) {
		if err := s.Commit(&Write{Conv: "c", After: 0, Records: []conversation.Record{rec(1), rec(2)},
			Derived: []Put{{Bucket: Convs, Key: "c", Value: []byte("snap2")}}}); err != nil {
			t.Fatal(err)
		}
		// A writer that read the log at 1 is refused, and nothing of its
		// write is applied.
		err := s.Commit(&Write{Conv: "c", After: 1, Records: []conversation.Record{rec(2)},
			Puts: []Put{{Bucket: Requests, Key: "lost", Value: []byte("x")}}})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("stale append: %v, want ErrConflict", err)
		}
		if v, _ := s.Get(Requests, "lost"); v != nil {
			t.Fatal("a refused write left a put behind")
		}
		// And one that starts a log already started.
		if err := s.Commit(&Write{Conv: "c", After: 0, Records: []conversation.Record{rec(1)}}); !errors.Is(err, ErrConflict) {
			t.Fatalf("second first record: %v, want ErrConflict", err)
		}
		if err := s.Commit(&Write{Conv: "c", After: 2, Records: []conversation.Record{rec(3)}}); err != nil {
			t.Fatal(err)
		}
		last, err := s.LastSeq("c")
		if err != nil || last != 3 {
			t.Fatalf("LastSeq = %d, %v; want 3", last, err)
		}
		recs, err := s.Records("c", 1, 10)
		if err != nil || len(recs) != 2 || recs[0].Seq != 2 || recs[1].Seq != 3 {
			t.Fatalf("Records(after 1) = %v, %v", recs, err)
		}
		if recs, _ := s.Records("c", 0, 1); len(recs) != 1 || recs[0].Seq != 1 {
			t.Fatalf("Records(limit 1) = %v", recs)
		}
		if v, _ := s.Get(Convs, "c"); string(v) != "snap2" {
			t.Fatalf("derived snapshot = %q", v)
		}
	})
}

func TestSuiteKeysReadInOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, s Store) {
		var puts []Put
		for _, k := range []string{"b/2", "a/1", "b/1", "c", "b/3"} {
			puts = append(puts, Put{Bucket: Usage, Key: k, Value: []byte("v" + k)})
		}
		if err := s.Commit(&Write{Conv: "x", After: 0, Records: []conversation.Record{rec(1)}, Derived: puts[:2], Puts: puts[2:]}); err != nil {
			t.Fatal(err)
		}
		var all []string
		if err := s.ForEach(Usage, func(k string, v []byte) error {
			all = append(all, k+"="+string(v))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if want := []string{"a/1=va/1", "b/1=vb/1", "b/2=vb/2", "b/3=vb/3", "c=vc"}; !slices.Equal(all, want) {
			t.Fatalf("ForEach = %v, want %v", all, want)
		}
		var scan []string
		if err := s.Scan(Usage, "b/", "b/3", false, func(k, _ []byte) bool { scan = append(scan, string(k)); return true }); err != nil {
			t.Fatal(err)
		}
		if want := []string{"b/1", "b/2"}; !slices.Equal(scan, want) {
			t.Fatalf("Scan[b/, b/3) = %v, want %v", scan, want)
		}
		var rev []string
		if err := s.Reverse(Usage, "b/", func(k string, _ []byte) bool { rev = append(rev, k); return len(rev) < 2 }); err != nil {
			t.Fatal(err)
		}
		if want := []string{"b/3", "b/2"}; !slices.Equal(rev, want) {
			t.Fatalf("Reverse(b/) stopped after 2 = %v, want %v", rev, want)
		}
		got, err := s.GetAll(Usage, []string{"c", "nope", "a/1"})
		if err != nil || string(got[0]) != "vc" || got[1] != nil || string(got[2]) != "va/1" {
			t.Fatalf("GetAll = %q, %v", got, err)
		}
		if err := s.Commit(&Write{Puts: []Put{{Bucket: Usage, Key: "c"}}}); err != nil {
			t.Fatal(err)
		}
		if v, _ := s.Get(Usage, "c"); v != nil {
			t.Fatalf("deleted key reads %q", v)
		}
	})
}

func TestSuiteCountersAddUnderConcurrency(t *testing.T) {
	eachBackend(t, func(t *testing.T, s Store) {
		const writers, each = 8, 10
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Go(func() {
				for i := 0; i < each; i++ {
					if err := s.Commit(&Write{Puts: []Put{{Bucket: Usage, Key: "day", Add: []uint64{1, 2}}}}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		v, _ := s.Get(Usage, "day")
		row, err := Counters(v)
		if err != nil || len(row) != 2 || row[0] != writers*each || row[1] != 2*writers*each {
			t.Fatalf("counters = %v, %v; want [%d %d]", row, err, writers*each, 2*writers*each)
		}
	})
}

func TestSuiteIfAbsentRefusesAnExistingKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, s Store) {
		w := func(v string) *Write {
			return &Write{Puts: []Put{{Bucket: Claims, Key: "r1", Value: []byte(v)}}, IfAbsent: []Put{{Bucket: Claims, Key: "r1"}}}
		}
		if err := s.Commit(w("first")); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(w("second")); !errors.Is(err, ErrConflict) {
			t.Fatalf("second claim: %v, want ErrConflict", err)
		}
		if v, _ := s.Get(Claims, "r1"); string(v) != "first" {
			t.Fatalf("claim = %q, want first", v)
		}
	})
}

func TestSuiteWatchSendsEveryRecordOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, s Store) {
		if err := s.Commit(&Write{Conv: "w", After: 0, Records: []conversation.Record{rec(1), rec(2)}}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ch := s.Watch(ctx, "w", 1)
		const n = 30
		wrote := make(chan error, 1)
		go func() {
			for i := uint64(3); i <= n; i++ {
				if err := s.Commit(&Write{Conv: "w", After: i - 1, Records: []conversation.Record{rec(i)}}); err != nil {
					wrote <- fmt.Errorf("commit %d: %w", i, err)
					return
				}
			}
			wrote <- nil
		}()
		defer func() {
			if err := <-wrote; err != nil {
				t.Error(err)
			}
		}()
		next := uint64(2)
		for next <= n {
			batch, ok := <-ch
			if !ok {
				t.Fatalf("watch closed at %d: %v", next, ctx.Err())
			}
			for _, r := range batch {
				if r.Seq != next {
					t.Fatalf("watch sent %d, want %d", r.Seq, next)
				}
				next++
			}
		}
	})
}

// Two nodes on one etcd append to one conversation as fast as they can:
// every seq is written once, by one of them, and the log has no gap.
func TestEtcdTwoNodesNeverForkALog(t *testing.T) {
	c := etcdtest.Start(t, 3)
	a := openEtcdTest(t, c, "/fork/", "a")
	b := openEtcdTest(t, c, "/fork/", "b")
	const each = 40
	var wg sync.WaitGroup
	wins := map[string]int{}
	var mu sync.Mutex
	for _, s := range []*Etcd{a, b} {
		wg.Go(func() {
			for n := 0; n < each; {
				last, err := s.LastSeq("f")
				if err != nil {
					t.Error(err)
					return
				}
				r := rec(last + 1)
				r.Author = s.Node()
				err = s.Commit(&Write{Conv: "f", After: last, Records: []conversation.Record{r}})
				if errors.Is(err, ErrConflict) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				n++
				mu.Lock()
				wins[s.Node()]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	recs, err := a.Records("f", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2*each {
		t.Fatalf("the log has %d records; the two nodes were acknowledged %d", len(recs), 2*each)
	}
	by := map[string]int{}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i+1, r.Seq)
		}
		by[r.Author]++
	}
	if by["a"] != wins["a"] || by["b"] != wins["b"] {
		t.Fatalf("records by node %v, acknowledged %v", by, wins)
	}
}

// Only the node holding the election's lease commits under Guard; once it
// lost the lease its guarded commit is refused, even while it still
// believes it leads.
func TestEtcdGuardHoldsOnlyWhileLeading(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openEtcdTest(t, c, "/guard/", "a")
	b := openEtcdTest(t, c, "/guard/", "b")
	claim := func(s *Etcd, id string) error {
		return s.Commit(&Write{Guard: true, Puts: []Put{{Bucket: Claims, Key: id, Value: []byte(s.Node())}}})
	}
	if err := claim(a, "r0"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("claim before leading: %v, want ErrNotLeader", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lost, err := a.Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := claim(a, "r1"); err != nil {
		t.Fatalf("claim while leading: %v", err)
	}
	if who, _ := b.Executor(ctx); who != "a" {
		t.Fatalf("executor = %q, want a", who)
	}
	// b campaigns; a's lease is left to run out, as a crash would leave it.
	bLead := make(chan error, 1)
	go func() { _, err := b.Lead(ctx); bLead <- err }()
	a.Abandon()
	if err := <-bLead; err != nil {
		t.Fatal(err)
	}
	<-lost
	// a is told it lost the lead; a commit that raced that news is refused
	// by etcd itself: the compare on a's election key fails.
	a.leading.Store(true)
	if err := claim(a, "r2"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("claim after the lease ran out: %v, want ErrNotLeader", err)
	}
	if err := claim(b, "r2"); err != nil {
		t.Fatalf("new leader's claim: %v", err)
	}
	if v, _ := b.Get(Claims, "r2"); string(v) != "b" {
		t.Fatalf("r2 claimed by %q, want b", v)
	}
}
