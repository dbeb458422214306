package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestAddCountersConcurrently: writers committing at once through the group
// commit each add to the same counters; none of their adds is lost, and a
// row grows as a longer add arrives.
func TestAddCountersConcurrently(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "t.db"))
	defer s.Close()
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Go(func() {
			for i := 0; i < 100; i++ {
				add := []uint64{1}
				if i%10 == 0 {
					add = []uint64{1, 0, 2}
				}
				if err := s.Commit(&Write{Puts: []Put{{Bucket: Usage, Key: "row", Add: add}}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	v, err := s.Get(Usage, "row")
	if err != nil {
		t.Fatal(err)
	}
	row, err := Counters(v)
	if err != nil || fmt.Sprint(row) != "[1600 0 320]" {
		t.Fatalf("counters %v %v", row, err)
	}
	// Two adds to one key in one write both count.
	if err := s.Commit(&Write{Puts: []Put{{Bucket: Usage, Key: "row", Add: []uint64{1}}, {Bucket: Usage, Key: "row", Add: []uint64{1}}}}); err != nil {
		t.Fatal(err)
	}
	v, _ = s.Get(Usage, "row")
	if row, _ := Counters(v); row[0] != 1602 {
		t.Fatalf("after two adds in one write: %v", row)
	}
	if _, err := Counters([]byte{0x80}); err == nil {
		t.Fatal("a truncated uvarint decoded")
	}
	check(t, s)
}

// TestScan: the range is [from, to), forwards or last first, and stops
// when fn says so.
func TestScan(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "t.db"))
	defer s.Close()
	var puts []Put
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		puts = append(puts, Put{Bucket: ReqLog, Key: k, Value: []byte(k)})
	}
	if err := s.Commit(&Write{Puts: puts}); err != nil {
		t.Fatal(err)
	}
	scan := func(from, to string, reverse bool, max int) string {
		var got []string
		if err := s.Scan(ReqLog, from, to, reverse, func(k, v []byte) bool {
			got = append(got, string(k))
			return len(got) < max
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, "")
	}
	for _, c := range []struct {
		from, to string
		reverse  bool
		max      int
		want     string
	}{
		{"", "", false, 9, "abcde"},
		{"", "", true, 9, "edcba"},
		{"b", "d", false, 9, "bc"},
		{"b", "d", true, 9, "cb"},
		{"bb", "dd", true, 9, "dc"},
		{"", "c", true, 1, "b"},
		{"c", "", true, 9, "edc"},
		{"f", "", true, 9, ""},
		{"", "a", true, 9, ""},
		{"", "z", true, 2, "ed"},
	} {
		if got := scan(c.from, c.to, c.reverse, c.max); got != c.want {
			t.Errorf("Scan(%q, %q, reverse %v) = %q, want %q", c.from, c.to, c.reverse, got, c.want)
		}
	}
}
