// Package store keeps the gateway's state: the conversations' logs, which
// are the truth, and what is derived from them (snapshots, requests, the
// replay window), beside the keys and counters the other packages keep. The
// engine and the other packages see it only through the Store interface, so
// that a replicated backend can sit behind it; Bolt, one bbolt file written
// log-first, is the backend today. It is the one package that imports
// bbolt, so it also measures bbolt itself for the bench's ceiling.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/twokey/twokey/conversation"
)

// Buckets the store keeps.
const (
	Meta     = "meta"
	Convs    = "convs"
	Requests = "requests"
	Pending  = "pending"
	Secrets  = "secrets"
	Nonces   = "nonces"
	Programs = "programs"
	ReqLog   = "reqlog"
	// Usage holds the request log's per-day counters (reqlog): one row of
	// counters (see Put.Add) per day, conversation, service and submitter.
	Usage = "usage"
	// ConvReqs indexes requests by conversation and submission seq:
	// key CONV/%016x(seq), value the request id.
	ConvReqs = "convreqs"
	// Seen holds the payload digest of every envelope accepted within the
	// freshness window (PROTOCOL 2): key the digest, value when it may be
	// forgotten (RFC 3339).
	Seen = "seen"
	// IDs holds the ids accepted once per server: "proposal/ID" and
	// "secret/ID", value the conversation.
	IDs = "ids"
	// Bans holds the management API's failed-check counts and bans, so a
	// ban survives a restart.
	Bans = "bans"
	// Webhooks holds the notification targets made through the management
	// API and the sealed secrets of every target (package notify).
	Webhooks = "webhooks"
	// Outbox holds the notifications not yet delivered, written in the
	// commit of the records that cause them: key TARGET/ORDER, in the
	// order they were made.
	Outbox = "outbox"
	// Deliveries holds the recent history of delivered and dead-lettered
	// notifications, key TARGET/ORDER.
	Deliveries = "deliveries"
	// Claims holds, in a store several gateways share, the executing
	// requests whose call the executor has started: key the request id,
	// value the node that claimed it. A claim is committed under the
	// executor's lease guard (Write.Guard) before the call, and deleted with
	// the outcome; an executing request without one was never sent.
	Claims = "claims"
	// Proposals is a bucket that files written by earlier versions hold;
	// nothing reads or writes it.
	Proposals = "proposals"
)

// ErrLocked is returned when another process holds the database.
var ErrLocked = errors.New("store: database is locked by another process")

// ErrConflict is returned by Commit when the conversation's log no longer
// ends where the writer saw it (Write.After): another writer appended
// first. Nothing of the write was applied.
var ErrConflict = errors.New("store: the conversation's log moved on since it was read")

// ErrNotLeader is returned by a Commit with Guard set when this node does
// not hold the executor's lease (any more): nothing was applied.
var ErrNotLeader = errors.New("store: this node is not the executor (its lease was lost or another node leads)")

// Store is the gateway's storage, as every package uses it.
//
// Commit is the one write: records appended to one conversation's log, the
// state derived from them, and other keys, all atomically and durably. The
// log is the truth; derived state (Write.Derived) is kept with the records
// and may reach its bucket later, but every read sees it at once.
type Store interface {
	// Commit applies w durably: it returns once w is on disk (or
	// replicated), nil, or an error and nothing of w applied. When w has
	// records they must be numbered from w.After+1, and the commit is
	// refused with ErrConflict unless w.Conv's last seq is still w.After.
	Commit(w *Write) error
	// Records returns up to limit records of conv after seq, ascending.
	Records(conv string, after uint64, limit int) ([]conversation.Record, error)
	// LastSeq returns the seq of conv's last record (0: none).
	LastSeq(conv string) (uint64, error)
	// Watch sends the records of conv committed after seq after, in
	// order and without gaps, each batch as soon as it is durable, until
	// ctx ends; then the channel is closed. A reader that falls behind
	// gets the records it missed from the log, never loses them.
	Watch(ctx context.Context, conv string, after uint64) <-chan []conversation.Record

	// Get returns a copy of the value at bucket/key, or nil.
	Get(bucket, key string) ([]byte, error)
	// GetAll returns copies of the values at keys of bucket, nil where a
	// key is absent, as of one moment.
	GetAll(bucket string, keys []string) ([][]byte, error)
	// ForEach calls fn with a copy of every key and value of bucket, in
	// key order.
	ForEach(bucket string, fn func(k string, v []byte) error) error
	// Scan calls fn with the keys and values of bucket in [from, to) (to
	// "" has no upper bound), in key order, or last key first when
	// reverse, until fn returns false. k and v are valid only during fn:
	// copy what you keep. fn must not call the store.
	Scan(bucket, from, to string, reverse bool, fn func(k, v []byte) bool) error
	// Reverse calls fn with copies of the keys and values of bucket that
	// start with prefix, last key first, until fn returns false.
	Reverse(bucket, prefix string, fn func(k string, v []byte) bool) error
	// Put writes one key durably.
	Put(bucket, key string, value []byte) error

	// Stats returns the backend's write counters since it was opened.
	Stats() Stats
	// SetWriteHook installs f to run inside every write transaction; an
	// error from it aborts the transaction (fault injection in tests).
	SetWriteHook(f func() error)
	// Close writes what is derived but not yet in place, stops the
	// committer after the writes already queued, and closes the backend.
	Close() error
}

// Put is one key written (or deleted, when Value is nil) in a bucket.
//
// When Add is set the Put adds to counters instead, inside the write
// transaction: the value at Key is a row of counters (uvarints, see
// Counters; an absent key is a row of zeros), and Add[i] is added to the
// i-th, the row growing as needed. Value is then ignored. Because the add
// reads and writes in the transaction that commits it, writes committing
// concurrently never lose each other's counts.
type Put struct {
	Bucket string
	Key    string
	Value  []byte
	Add    []uint64
}

// Write is one atomic change: records appended to a conversation's log,
// the state derived from them, and other keys. All of it commits, or none
// of it.
type Write struct {
	Conv string
	// After is the seq of Conv's last record when the writer read it: the
	// records are numbered from After+1, and the write commits only if
	// the log still ends there.
	After   uint64
	Records []conversation.Record
	// Derived is state that follows from the records (a snapshot, a
	// request's state, the replay window): it is written with the records,
	// in the log, and reaches its bucket at the next checkpoint; reads see
	// it at once. Derived puts cannot Add.
	Derived []Put
	// Puts are written in place, in the same transaction.
	Puts []Put
	// IfAbsent names keys (Bucket and Key; Value is ignored) that must
	// not exist: the commit is refused with ErrConflict when one does.
	IfAbsent []Put
	// Guard commits only while this node holds the executor's lease in
	// a shared store (Cluster), refusing with ErrNotLeader otherwise; the
	// check is part of the commit, so a node that lost the lease a moment
	// ago cannot commit under it. A store with one writer (Bolt) is always
	// its own executor.
	Guard bool
}

// Cluster is a Store that several gateways share (Etcd). Every node reads
// and appends; one at a time, the executor, holds a lease and alone makes
// upstream calls.
type Cluster interface {
	Store
	// Node is this gateway's name among those sharing the store.
	Node() string
	// Lead campaigns until this node is the executor or ctx ends. The
	// channel it returns is closed when the lead is lost (the lease ran
	// out, the store closed); Lead may be called again after.
	Lead(ctx context.Context) (lost <-chan struct{}, err error)
	// Executor names the node that executes now ("" when none does).
	Executor(ctx context.Context) (string, error)
	// Follow calls fn, from one goroutine, with each conversation whose
	// log grew (on any node) and its new last seq, until ctx ends. A call
	// with conv "" means the feed restarted and some growth may have been
	// missed: every conversation must be read again.
	Follow(ctx context.Context, fn func(conv string, last uint64))
	// Health reports the store's endpoints and the nodes sharing it.
	Health(ctx context.Context) ClusterHealth
	// Report publishes this node's view (its watch lag) for Health.
	Report(lag time.Duration)
}

// ClusterHealth is what Cluster.Health reports.
type ClusterHealth struct {
	Executor  string           `json:"executor"`
	Endpoints []EndpointHealth `json:"endpoints"`
	Nodes     []NodeHealth     `json:"nodes"`
}

// EndpointHealth is one etcd endpoint as this node sees it.
type EndpointHealth struct {
	Endpoint string `json:"endpoint"`
	Healthy  bool   `json:"healthy"`
	Leader   bool   `json:"leader,omitempty"`
	Error    string `json:"error,omitempty"`
	// Revision is the endpoint's store revision.
	Revision int64 `json:"revision,omitempty"`
}

// NodeHealth is one gateway node as it last reported itself.
type NodeHealth struct {
	Node string `json:"node"`
	// LagMS is how far behind the log's last commit its watch was.
	LagMS    int64  `json:"lag_ms"`
	Reported string `json:"reported"`
}

// Stats are a backend's counters since it was opened; the difference of
// two (Sub) is what happened between them.
type Stats struct {
	// PagesWritten is how many pages write transactions wrote to disk,
	// and BytesWritten how many bytes that is (pages times page size):
	// what each fsync carried.
	PagesWritten int64
	BytesWritten int64
	// WriteTime is the time spent writing those pages and syncing them.
	WriteTime time.Duration
	// Commits counts write transactions, Checkpoints the ones that moved
	// derived state into place.
	Commits     int64
	Checkpoints int64
}

// Sub returns the counts in s that are not in old.
func (s Stats) Sub(old Stats) Stats {
	return Stats{PagesWritten: s.PagesWritten - old.PagesWritten, BytesWritten: s.BytesWritten - old.BytesWritten,
		WriteTime: s.WriteTime - old.WriteTime, Commits: s.Commits - old.Commits, Checkpoints: s.Checkpoints - old.Checkpoints}
}

// Counters decodes a row of counters written by Put.Add (nil: none).
func Counters(v []byte) ([]uint64, error) {
	var row []uint64
	for len(v) > 0 {
		n, k := binary.Uvarint(v)
		if k <= 0 {
			return nil, errors.New("malformed counters")
		}
		row = append(row, n)
		v = v[k:]
	}
	return row, nil
}
