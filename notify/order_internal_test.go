package notify

import (
	"testing"
)

// On a shared store two nodes' orders never meet: each carries its own
// low 12 bits, and each node's orders rise.
func TestOrdersOfTwoNodesNeverMeet(t *testing.T) {
	a, b := &Notifier{nodeBits: 7}, &Notifier{nodeBits: 9}
	seen := map[uint64]bool{}
	var lastA, lastB uint64
	for i := 0; i < 5000; i++ {
		oa, ob := a.nextOrder(), b.nextOrder()
		if seen[oa] || seen[ob] || oa == ob {
			t.Fatalf("order taken twice at %d: %x %x", i, oa, ob)
		}
		seen[oa], seen[ob] = true, true
		if oa <= lastA || ob <= lastB {
			t.Fatalf("orders went back: %x after %x, %x after %x", oa, lastA, ob, lastB)
		}
		lastA, lastB = oa, ob
		if oa&0xfff != 7 || ob&0xfff != 9 {
			t.Fatalf("node bits lost: %x %x", oa, ob)
		}
	}
	// A store of one node counts up by one, as before.
	one := &Notifier{}
	if one.nextOrder() != 1 || one.nextOrder() != 2 {
		t.Fatal("a single node's orders do not count by one")
	}
}
