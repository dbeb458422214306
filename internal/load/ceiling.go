package load

import (
	"context"
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
// the figures it bounds. The disk figures are taken on bbolt directly
// (store.MeasureRaw), not through the store's committer: the ceiling must
// not depend on the code it is a ceiling for. store.Commit's own rate is
// kept beside it.
type Ceiling struct {
	VerifyOne float64 // Ed25519 verifies/s on one goroutine
	VerifyAll float64 // Ed25519 verifies/s on GOMAXPROCS goroutines
	FsyncSeq  float64 // raw bbolt transactions/s, one small put and one fsync each, sequential
	// RawWrites is approval-sized writes/s on raw bbolt from Writers
	// goroutines calling DB.Batch (a batch commits as soon as every
	// writer is in it): group commit with nothing of twokey's around it.
	RawWrites float64
	// RawPages is bbolt pages written per raw write, and RawPageTime the
	// write-and-sync time per page.
	RawPages    float64
	RawPageTime time.Duration
	// StoreWrites is the same writes/s through store.Commit (twokey's
	// group committer), from the same number of writers: not part of
	// the ceiling, a figure of the code under test.
	StoreWrites float64
	Writers     int
	Procs       int
}

// Min is the ceiling one approval is held to: min(verifies/s, raw
// group-committed writes/s), since an approval costs one verify and one
// durable write.
func (c Ceiling) Min() float64 { return min(c.VerifyAll, c.RawWrites) }

// What one end-to-end request of the M = 2 flow costs: the submission and
// the approval are each verified and committed, and the outcome
// (gate.executed and gate.response) is a third commit.
const (
	flowVerifies = 2
	flowCommits  = 3
)

// PerRequest is the ceiling of requests/s for the M = 2 flow:
// min(verifies/s ÷ 2, writes/s ÷ 3).
func (c Ceiling) PerRequest() float64 {
	return min(c.VerifyAll/flowVerifies, c.RawWrites/flowCommits)
}

// measureCeiling measures Ed25519 verification and durable bbolt commits.
func measureCeiling(ctx context.Context, dir string, d time.Duration, writers int) (Ceiling, error) {
	c := Ceiling{Procs: runtime.GOMAXPROCS(0), Writers: writers}
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
	if err := ctx.Err(); err != nil {
		return c, err
	}
	rec, snap, req := approvalWrite(id)
	recJSON, err := json.Marshal(rec)
	if err != nil {
		return c, err
	}
	raw, err := store.MeasureRaw(filepath.Join(dir, "ceiling-raw.db"), d, writers, recJSON, snap, req)
	if err != nil {
		return c, fmt.Errorf("raw bbolt: %w", err)
	}
	c.FsyncSeq, c.RawWrites, c.RawPages, c.RawPageTime = raw.FsyncSeq, raw.Writes, raw.Pages, raw.PageTime
	if err := ctx.Err(); err != nil {
		return c, err
	}

	// The same writes through store.Commit: a figure, not the ceiling.
	path := filepath.Join(dir, "ceiling-store.db")
	st, err := store.Open(path, 2*time.Second)
	if err != nil {
		return c, err
	}
	defer os.Remove(path)
	defer st.Close()
	convs := make([]string, writers)
	for w := range convs {
		convs[w] = fmt.Sprintf("conv-%03d", w)
	}
	done, elapsed, err := store.Writers(writers, d, func(w int, seq uint64) error {
		r := rec
		r.Seq = seq
		return st.Commit(&store.Write{Conv: convs[w], After: seq - 1, Records: []conversation.Record{r},
			Derived: []store.Put{{Bucket: store.Convs, Key: convs[w], Value: snap}, {Bucket: store.Requests, Key: uuid.NewString(), Value: req}}})
	})
	if err != nil {
		return c, err
	}
	c.StoreWrites = rate(int(done), elapsed)
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
