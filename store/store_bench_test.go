package store

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twokey/twokey/conversation"
)

// benchRecord returns a record of the size a vote appends.
func benchRecord(b *testing.B) conversation.Record {
	b.Helper()
	id, err := conversation.NewIdentity("bench")
	if err != nil {
		b.Fatal(err)
	}
	env, err := conversation.SignJSON(id, conversation.KindGateApprove, map[string]string{
		"conversation": "5b0e7a52-2f0f-4e43-9d7c-0f3a8f2a6c11", "created_at": conversation.FormatTime(time.Now()),
		"gateway": id.KeyID(), "request_id": "0c6f0f5e-8a43-4a35-9f55-1b1f0d2d7e90",
		"request_digest": conversation.Digest([]byte("the request")),
	})
	if err != nil {
		b.Fatal(err)
	}
	m, err := conversation.Verify(env)
	if err != nil {
		b.Fatal(err)
	}
	return conversation.NewRecord(1, conversation.FormatTime(time.Now()), m, conversation.Chain{})
}

func benchStore(b *testing.B) *Bolt {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkAppend is one record appended to a conversation's log with its
// snapshot, durably: one writer, so one transaction and its fsyncs each.
func BenchmarkAppend(b *testing.B) {
	s := benchStore(b)
	rec := benchRecord(b)
	snap, _ := json.Marshal(map[string]any{"state": map[string]any{"seq": 1}})
	var seq uint64
	for b.Loop() {
		seq++
		rec.Seq = seq
		if err := s.Commit(&Write{Conv: "c", After: seq - 1, Records: []conversation.Record{rec}, Derived: []Put{{Bucket: Convs, Key: "c", Value: snap}}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendParallel is the same from many writers at once, each on
// its own conversation: the group committer shares each transaction and
// its fsyncs among them.
func BenchmarkAppendParallel(b *testing.B) {
	s := benchStore(b)
	rec := benchRecord(b)
	snap, _ := json.Marshal(map[string]any{"state": map[string]any{"seq": 1}})
	var writers atomic.Int64
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		conv := fmt.Sprintf("c%d", writers.Add(1))
		r := rec
		var seq uint64
		for pb.Next() {
			seq++
			r.Seq = seq
			if err := s.Commit(&Write{Conv: conv, After: seq - 1, Records: []conversation.Record{r}, Derived: []Put{{Bucket: Convs, Key: conv, Value: snap}}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
