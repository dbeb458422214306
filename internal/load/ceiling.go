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
// the figures it bounds. An approval costs one Ed25519 verify and one
// durable append; the ceiling is the fewer of the two this machine can do
// per second. The disk's figure is the ideal group commit
// (store.MeasureIdeal: 64 writers, one committer that commits everything
// queued in one bbolt transaction as soon as the previous commit ends, on
// a copy of the tier's own database): what a log-first store could reach
// on this disk, with nothing of twokey's around it, since the ceiling must
// not depend on the code it is a ceiling for. bbolt's DB.Batch (which the
// ceiling was before: its batches wait for a 10 ms timer or for every
// writer, so it measures bbolt's batching, not the disk) and store.Commit's
// own rate are kept beside it as references.
type Ceiling struct {
	VerifyOne float64 // Ed25519 verifies/s on one goroutine
	VerifyAll float64 // Ed25519 verifies/s on GOMAXPROCS goroutines
	// Ideal is the ideal group commit of approval-sized appends
	// (IdealValue bytes each: what one approval's commit appends to the
	// log) on a copy of the tier's database (Ideal.FileBytes), and
	// CopyTook how long making that copy took (setup, not a figure).
	Ideal      store.IdealFigures
	IdealValue int
	CopyTook   time.Duration
	FsyncSeq   float64 // reference: raw bbolt transactions/s, one small put and one fsync each, sequential
	// RawWrites is the reference that was the ceiling before: approval-
	// sized writes/s on a fresh raw bbolt file from Writers goroutines
	// calling DB.Batch. RawPages is bbolt pages written per raw write,
	// and RawPageTime the write-and-sync time per page.
	RawWrites   float64
	RawPages    float64
	RawPageTime time.Duration
	// StoreWrites is the ideal's appends/s through store.Commit (twokey's
	// group committer) on a fresh file, from the same number of writers:
	// not part of the ceiling, a figure of the code under test.
	StoreWrites float64
	Writers     int
	Procs       int
}

// Min is the ceiling one approval is held to: C = min(verifies/s, ideal
// group-committed appends/s), since an approval costs one verify and one
// durable append.
func (c Ceiling) Min() float64 { return min(c.VerifyAll, c.Ideal.Writes) }

// What one end-to-end request of the M = 2 flow costs: the submission and
// the approval are each verified and committed, and the outcome
// (gate.executed and gate.response) is a third commit.
const (
	flowVerifies = 2
	flowCommits  = 3
)

// PerRequest is the ceiling of requests/s for the M = 2 flow: C₃ =
// min(verifies/s ÷ 2, ideal appends/s ÷ 3).
func (c Ceiling) PerRequest() float64 {
	return min(c.VerifyAll/flowVerifies, c.Ideal.Writes/flowCommits)
}

// copier is a store that can copy its file consistently (store.Bolt).
type copier interface{ CopyTo(path string) error }

// measureCeiling measures Ed25519 verification and durable bbolt commits;
// the ideal group commit runs on a copy of st's database, made here and
// removed after.
func measureCeiling(ctx context.Context, st store.Store, dir string, d time.Duration, writers int) (Ceiling, error) {
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

	// The ideal group commit, on a copy of the tier's database: the same
	// file size, tree depth and freelist the tier's commits meet.
	rec, snap, req, seen := approvalWrite(id)
	value, err := store.LogEntry(approvalCommit("ceiling-conv", 0, rec, req, seen))
	if err != nil {
		return c, err
	}
	c.IdealValue = len(value)
	cp, ok := st.(copier)
	if !ok {
		return c, fmt.Errorf("the store (%T) cannot copy its database for the ideal commit", st)
	}
	copyPath := filepath.Join(dir, "ceiling-ideal.db")
	start := time.Now()
	err = cp.CopyTo(copyPath)
	defer os.Remove(copyPath)
	if err != nil {
		return c, fmt.Errorf("copy the tier's database: %w", err)
	}
	c.CopyTook = time.Since(start)
	if err := ctx.Err(); err != nil {
		return c, err
	}
	if c.Ideal, err = store.MeasureIdeal(copyPath, d, writers, value); err != nil {
		return c, fmt.Errorf("ideal group commit: %w", err)
	}
	if err := os.Remove(copyPath); err != nil {
		return c, err
	}
	if err := ctx.Err(); err != nil {
		return c, err
	}

	// References, not the ceiling: bbolt's DB.Batch, as the ceiling was
	// measured before, and the same appends through store.Commit.
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

	path := filepath.Join(dir, "ceiling-store.db")
	sst, err := store.Open(path, 2*time.Second)
	if err != nil {
		return c, err
	}
	defer os.Remove(path)
	defer sst.Close()
	convs := make([]string, writers)
	for w := range convs {
		convs[w] = fmt.Sprintf("conv-%03d", w)
	}
	done, elapsed, err := store.Writers(writers, d, func(w int, seq uint64) error {
		return sst.Commit(approvalCommit(convs[w], seq-1, rec, req, fmt.Sprintf("%s/%s/%d", seen, convs[w], seq)))
	})
	if err != nil {
		return c, err
	}
	c.StoreWrites = rate(int(done), elapsed)
	return c, nil
}

// approvalCommit is the commit of one approval as the engine makes it
// now: its record appended after seq after, the request's new state and
// the envelope's replay-window key derived from it. A conversation's
// snapshot changes only with its membership or rules, not here.
func approvalCommit(conv string, after uint64, rec conversation.Record, req []byte, seen string) *store.Write {
	rec.Seq = after + 1
	return &store.Write{Conv: conv, After: after, Records: []conversation.Record{rec},
		Derived: []store.Put{{Bucket: store.Requests, Key: uuid.NewString(), Value: req},
			{Bucket: store.Seen, Key: seen, Value: []byte(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))}}}
}

// approvalPAE returns the bytes a gate.approve's signature covers.
func approvalPAE(id *conversation.Identity) []byte {
	raw, _ := json.Marshal(gate.VotePayload{Header: conversation.Header{Conversation: uuid.NewString(),
		CreatedAt: conversation.FormatTime(time.Now()), Gateway: id.KeyID()}, RequestID: uuid.NewString(),
		RequestDigest: conversation.Digest([]byte("request"))})
	return conversation.PAE(conversation.PayloadType(conversation.KindGateApprove), raw)
}

// approvalWrite returns a record, snapshot, request and replay-window key
// of the sizes an approval writes (the snapshot is for the DB.Batch
// reference, which writes it as twokey did before it was log-first).
func approvalWrite(id *conversation.Identity) (conversation.Record, []byte, []byte, string) {
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
	return rec, snap, req, m.Author + "/" + m.PayloadDigest()
}
