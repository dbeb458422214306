package load

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// throughput is how many operations were done in how long.
type throughput struct {
	Conc     int
	Done     int
	Errors   int
	Elapsed  time.Duration
	FirstErr string
	// Pages is the bbolt pages written per operation, Bytes what they
	// hold (store.Stats' BytesWritten: what the fsyncs carried), and
	// PageTime the time spent writing and syncing them: what a durable
	// commit costs on this disk.
	Pages    float64
	Bytes    float64
	PageTime time.Duration
	// PerCommit is operations per store commit (how many writes each
	// fsync carried), Checkpoints how many checkpoints were written
	// meanwhile (their pages are in Pages).
	PerCommit   float64
	Checkpoints int64
}

func (t throughput) PerSec() float64 { return rate(t.Done, t.Elapsed) }

// job is one signed envelope to post to a conversation.
type job struct {
	conv string
	body []byte
}

// approvalJobs signs budget approvals, each a gate.approve of a distinct
// pending request, taken round-robin over the seeded conversations from
// index from, so that concurrent approvals land in different
// conversations (each conversation is serialized under its own lock by
// design). It returns the jobs and the next unused index.
func (e *env) approvalJobs(s *seeded, from, budget int) ([]job, int, error) {
	n := len(s.convs)
	if from+budget > s.pending {
		return nil, from, fmt.Errorf("approvals: only %d pending requests seeded, %d needed", s.pending, from+budget)
	}
	jobs := make([]job, budget)
	for k := range jobs {
		g := from + k
		sc := &s.convs[g%n]
		jobs[k] = job{sc.id, e.approval(sc, sc.reqs[g/n])}
	}
	return jobs, from + budget, nil
}

// postAll posts jobs over HTTP from conc clients with one in flight each,
// until all are posted, maxTime has passed or ctx is done.
func (e *env) postAll(ctx context.Context, jobs []job, conc int, maxTime time.Duration) throughput {
	var next, done, errs atomic.Int64
	var firstErr atomic.Value
	var last atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(maxTime)
	for range conc {
		wg.Add(1)
		go loadSide(func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= len(jobs) {
					return
				}
				if _, err := e.post(jobs[k].conv, jobs[k].body); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				done.Add(1)
				last.Store(int64(time.Since(start)))
			}
		})
	}
	wg.Wait()
	t := throughput{Conc: conc, Done: int(done.Load()), Errors: int(errs.Load()), Elapsed: time.Duration(last.Load())}
	t.FirstErr, _ = firstErr.Load().(string)
	return t
}
