package load

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

// Ceiling is what this machine can do at best, measured in the same run as
// the figures it bounds.
type Ceiling struct {
	VerifyOne   float64 // Ed25519 verifies/s on one goroutine
	VerifyAll   float64 // Ed25519 verifies/s on GOMAXPROCS goroutines
	FsyncSeq    float64 // bbolt transactions/s, one small put and one fsync each, sequential
	GroupWrites float64 // approval-sized writes/s through store.Commit from many writers
	GroupWriter int     // how many writers
	// GroupPages is bbolt pages written per group-committed write, and
	// GroupPageTime the write-and-sync time per page.
	GroupPages    float64
	GroupPageTime time.Duration
	Procs         int
}

// Min is the ceiling an approval is held to: min(verifies/s, group-committed writes/s).
func (c Ceiling) Min() float64 { return min(c.VerifyAll, c.GroupWrites) }

// measureCeiling measures Ed25519 verification and durable bbolt commits.
func measureCeiling(dir string, d time.Duration, writers int) (Ceiling, error) {
	c := Ceiling{Procs: runtime.GOMAXPROCS(0), GroupWriter: writers}
	id, err := conversation.NewIdentity("ceiling")
	if err != nil {
		return c, err
	}
	msg := approvalPAE(id)
	sig := ed25519.Sign(id.Private, msg)
	pub := id.Public()
	verify := func(n int) float64 {
		var done atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := 0
				for time.Since(start) < d {
					for range 64 {
						if !ed25519.Verify(pub, msg, sig) {
							panic("ceiling: signature does not verify")
						}
					}
					k += 64
				}
				done.Add(int64(k))
			}()
		}
		wg.Wait()
		return rate(int(done.Load()), time.Since(start))
	}
	c.VerifyOne = verify(1)
	c.VerifyAll = verify(c.Procs)

	path := filepath.Join(dir, "ceiling.db")
	st, err := store.Open(path, 2*time.Second)
	if err != nil {
		return c, err
	}
	defer os.Remove(path)
	defer st.Close()
	// One fsync per transaction: one writer, one small put at a time
	// (each Commit alone in the committer is one bbolt Update).
	val := make([]byte, 100)
	n, start := 0, time.Now()
	for time.Since(start) < d {
		if err := st.Put(store.Meta, fmt.Sprintf("fsync-%08d", n), val); err != nil {
			return c, err
		}
		n++
	}
	c.FsyncSeq = rate(n, time.Since(start))

	// Group commit: writers each make approval-shaped writes (a record
	// appended to their own conversation's log, its snapshot, the request)
	// as fast as the committer takes them.
	rec, snap, req := approvalWrite(id)
	st0 := st.DB().Stats()
	var done atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start = time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conv := fmt.Sprintf("conv-%03d", w)
			r := rec
			for seq := uint64(1); time.Since(start) < d; seq++ {
				r.Seq = seq
				rid := uuid.NewString()
				err := st.Commit(&store.Write{Conv: conv, Records: []conversation.Record{r}, Snapshot: snap,
					Puts: []store.Put{{Bucket: store.Requests, Key: rid, Value: req}}})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return c, err
	}
	c.GroupWrites = rate(int(done.Load()), time.Since(start))
	st1 := st.DB().Stats()
	tx := st1.TxStats.Sub(&st0.TxStats)
	if n := done.Load(); n > 0 {
		c.GroupPages = float64(tx.GetWrite()) / float64(n)
		c.GroupPageTime = tx.GetWriteTime() / time.Duration(max(1, tx.GetWrite()))
	}
	return c, nil
}

// approvalPAE returns the bytes a gate.approve's signature covers.
func approvalPAE(id *conversation.Identity) []byte {
	raw, _ := json.Marshal(gate.VotePayload{Header: conversation.Header{Conversation: uuid.NewString(),
		CreatedAt: conversation.FormatTime(time.Now()), Gateway: id.KeyID()}, RequestID: uuid.NewString(),
		RequestDigest: conversation.Digest([]byte("request"))})
	return conversation.PAE(conversation.PayloadType(conversation.KindGateApprove), raw)
}

// approvalWrite returns a record, snapshot and request of the sizes an
// approval writes.
func approvalWrite(id *conversation.Identity) (conversation.Record, []byte, []byte) {
	p := gate.VotePayload{Header: conversation.Header{Conversation: uuid.NewString(),
		CreatedAt: conversation.FormatTime(time.Now()), Gateway: id.KeyID()}, RequestID: uuid.NewString(),
		RequestDigest: conversation.Digest([]byte("request"))}
	env, _ := conversation.SignJSON(id, conversation.KindGateApprove, p)
	m, _ := conversation.Verify(env)
	rec := conversation.NewRecord(1, conversation.FormatTime(time.Now()), m, conversation.Chain{})
	members := make([]conversation.Member, 4)
	keys := make([]string, 4)
	for i := range members {
		members[i] = conversation.Member{Key: id.KeyID(), Name: fmt.Sprintf("signer%d", i)}
		keys[i] = id.KeyID()
	}
	snap, _ := json.Marshal(map[string]any{
		"state": conversation.State{ID: p.Conversation, Name: "bench", Admin: id.KeyID(), Members: members, Seq: 12},
		"gate":  gate.Config{Enabled: true, Signers: keys, RequiredApprovals: 3, Rules: []gate.Rule{}}})
	req, _ := json.Marshal(gate.Request{ID: p.RequestID, Conversation: p.Conversation, Submitter: id.KeyID(),
		Payload: gate.RequestPayload{Header: p.Header, RequestID: p.RequestID, Service: "fun", Method: "POST",
			URL: "http://127.0.0.1:40000/b/" + p.RequestID, ExpiresAt: p.CreatedAt},
		Digest: p.RequestDigest, Endpoint: "/b/" + p.RequestID, Signers: keys, Required: 3,
		Approvals: keys[:2], Rejections: []string{}, State: gate.StatePending, ExpiresAt: time.Now()})
	return rec, snap, req
}
