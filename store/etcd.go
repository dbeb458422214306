package store

// Etcd: the Store on an etcd v3 cluster, shared by several gateways.
//
// Keys, under the prefix (default "/twokey/"):
//
//	l/CONV/%016x(seq)   a record's JSON, one key per record
//	s/CONV              the seq of CONV's last record, %016x: the key a
//	                    commit compares, so that two nodes never number
//	                    two records alike or fork a log
//	b/BUCKET/KEY        the value of KEY in BUCKET (derived state and
//	                    the other keys alike: a commit writes both)
//	e/                  the executor's election (client/v3/concurrency)
//	n/NODE              a node's last report (its watch lag), on its lease
//
// A commit is one etcd transaction: it compares the conversation's last
// seq (and the keys IfAbsent names, and the executor's election key when
// Guard is set) and writes the records, the new last seq and every put.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
)

// EtcdOptions configure OpenEtcd.
type EtcdOptions struct {
	// Endpoints are the cluster's client URLs or host:port pairs.
	Endpoints []string
	// Prefix is put before every key, so that several gateways can share
	// one cluster (default "/twokey/").
	Prefix string
	// TLS, when set, is the client's TLS configuration (client
	// certificate, the cluster's CA).
	TLS *tls.Config
	// Username and Password authenticate to etcd when set.
	Username, Password string
	// Node names this gateway among those sharing the prefix (default:
	// the host name and a random suffix, chosen by the caller).
	Node string
	// LeaseTTL is the executor's lease: a node that stops renewing it
	// loses the lead that long after (default 5 s; etcd's minimum applies).
	LeaseTTL time.Duration
	// Timeout bounds each request to etcd (default 5 s).
	Timeout time.Duration
	// DialTimeout bounds the first connection (default 5 s).
	DialTimeout time.Duration
}

func (o *EtcdOptions) defaults() {
	if o.Prefix == "" {
		o.Prefix = "/twokey/"
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
}

// etcdPage is how many keys a range read takes at a time, and etcdOps how
// many operations a bulk write (Put) puts in one transaction, well inside
// etcd's default --max-txn-ops of 128.
const etcdPage = 512

// Etcd is the Store on an etcd cluster.
type Etcd struct {
	cli  *clientv3.Client
	opts EtcdOptions
	p    string

	hookMu sync.Mutex
	hookFn func() error

	commits atomic.Int64

	leadMu   sync.Mutex
	session  *concurrency.Session
	election *concurrency.Election
	leading  atomic.Bool

	reportMu sync.Mutex
	report   *concurrency.Session // the lease of this node's report key

	closeOnce sync.Once
	done      chan struct{}
}

var _ Cluster = (*Etcd)(nil)

// OpenEtcd connects to the cluster and checks that it answers. Nothing is
// written.
func OpenEtcd(o EtcdOptions) (*Etcd, error) {
	o.defaults()
	if len(o.Endpoints) == 0 {
		return nil, errors.New("store: no etcd endpoints given (set --etcd-endpoints host:2379,...)")
	}
	cfg := clientv3.Config{Endpoints: o.Endpoints, DialTimeout: o.DialTimeout, TLS: o.TLS,
		Username: o.Username, Password: o.Password, Logger: zap.NewNop(),
		DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: 2 * time.Second}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect to etcd at %s: %w", strings.Join(o.Endpoints, ","), err)
	}
	s := &Etcd{cli: cli, opts: o, p: o.Prefix, done: make(chan struct{})}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := cli.Get(ctx, s.p+"s/", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("store: etcd at %s does not answer (%v); check --etcd-endpoints, the certificates and that a quorum of its members is up", strings.Join(o.Endpoints, ","), err)
	}
	return s, nil
}

// Client returns the etcd client (the bench's ceiling measures it).
func (s *Etcd) Client() *clientv3.Client { return s.cli }

// Prefix returns the key prefix.
func (s *Etcd) Prefix() string { return s.p }

// Node names this gateway.
func (s *Etcd) Node() string { return s.opts.Node }

func (s *Etcd) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.Timeout)
}

func (s *Etcd) logKey(conv string, seq uint64) string {
	return fmt.Sprintf("%sl/%s/%016x", s.p, conv, seq)
}
func (s *Etcd) lastKey(conv string) string   { return s.p + "s/" + conv }
func (s *Etcd) bucketKey(b, k string) string { return s.p + "b/" + b + "/" + k }
func (s *Etcd) bucketPrefix(b string) string { return s.p + "b/" + b + "/" }

func seqText(n uint64) string { return fmt.Sprintf("%016x", n) }

// unavailable is the error of a request etcd did not answer: the client is
// told plainly that the write's fate may be unknown.
func (s *Etcd) unavailable(what string, err error) error {
	if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotLeader) {
		return err
	}
	return fmt.Errorf("%w: %w", twokey.Errorf(twokey.EUnavailable,
		"the store (etcd) did not confirm the %s (%s): this node may be cut off from a quorum of etcd's members; a write may or may not have been applied (read the conversation to see), try again or use another node", what, twokey.Clip(err.Error())), err)
}

// Commit applies w in one etcd transaction.
func (s *Etcd) Commit(w *Write) error {
	for i, r := range w.Records {
		if r.Seq != w.After+uint64(i)+1 {
			return fmt.Errorf("store: record %d of %s does not follow %d", r.Seq, w.Conv, w.After+uint64(i))
		}
	}
	for _, d := range w.Derived {
		if d.Add != nil {
			return fmt.Errorf("store: a derived put cannot add (%s/%s)", d.Bucket, d.Key)
		}
	}
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	if len(w.Records) > 0 {
		lk := s.lastKey(w.Conv)
		if w.After == 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(lk), "=", 0))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.Value(lk), "=", seqText(w.After)))
		}
		for _, r := range w.Records {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(s.logKey(w.Conv, r.Seq), string(b)))
		}
		ops = append(ops, clientv3.OpPut(lk, seqText(w.After+uint64(len(w.Records)))))
	}
	var adds []Put
	for _, group := range [][]Put{w.Derived, w.Puts} {
		for _, p := range group {
			switch {
			case p.Add != nil:
				adds = append(adds, p)
			case p.Value == nil:
				ops = append(ops, clientv3.OpDelete(s.bucketKey(p.Bucket, p.Key)))
			default:
				ops = append(ops, clientv3.OpPut(s.bucketKey(p.Bucket, p.Key), string(p.Value)))
			}
		}
	}
	for _, k := range w.IfAbsent {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.bucketKey(k.Bucket, k.Key)), "=", 0))
	}
	if w.Guard {
		g, ok := s.guard()
		if !ok {
			return ErrNotLeader
		}
		cmps = append(cmps, g)
	}
	if err := s.hook(); err != nil {
		return err
	}
	// Counters are read, added to and written back, the keys compared
	// unchanged since the read: a commit that raced another's add is made
	// again from a fresh read.
	for attempt := 0; ; attempt++ {
		cmpsN, opsN := cmps, ops
		if len(adds) > 0 {
			var err error
			cmpsN, opsN, err = s.addOps(adds, slicesClone(cmps), slicesClone(ops))
			if err != nil {
				return s.unavailable("write", err)
			}
		}
		ctx, cancel := s.ctx()
		resp, err := s.cli.Txn(ctx).If(cmpsN...).Then(opsN...).Commit()
		cancel()
		if err != nil {
			return s.unavailable("write", err)
		}
		if resp.Succeeded {
			s.commits.Add(1)
			return nil
		}
		if err := s.whyRefused(w); err != nil {
			return err
		}
		if len(adds) == 0 || attempt == 50 {
			return s.unavailable("write", errors.New("the transaction was refused and no reason for it was found"))
		}
	}
}

func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

func (s *Etcd) addOps(adds []Put, cmps []clientv3.Cmp, ops []clientv3.Op) ([]clientv3.Cmp, []clientv3.Op, error) {
	rows := map[string][]uint64{}
	var order []string
	for _, p := range adds {
		k := s.bucketKey(p.Bucket, p.Key)
		row, seen := rows[k]
		if !seen {
			ctx, cancel := s.ctx()
			resp, err := s.cli.Get(ctx, k)
			cancel()
			if err != nil {
				return nil, nil, err
			}
			var rev int64
			if len(resp.Kvs) == 1 {
				rev = resp.Kvs[0].ModRevision
				if row, err = Counters(resp.Kvs[0].Value); err != nil {
					return nil, nil, fmt.Errorf("store: %s/%s: %w", p.Bucket, p.Key, err)
				}
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
			order = append(order, k)
		}
		for i, n := range p.Add {
			for len(row) <= i {
				row = append(row, 0)
			}
			row[i] += n
		}
		rows[k] = row
	}
	for _, k := range order {
		ops = append(ops, clientv3.OpPut(k, string(encodeCounters(rows[k]))))
	}
	return cmps, ops, nil
}

// whyRefused names the compare that failed a transaction: ErrConflict
// (the log moved on, a key IfAbsent exists), ErrNotLeader, or nil when
// neither holds (a counter moved: make the commit again).
func (s *Etcd) whyRefused(w *Write) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if len(w.Records) > 0 {
		resp, err := s.cli.Get(ctx, s.lastKey(w.Conv))
		if err != nil {
			return s.unavailable("write", err)
		}
		cur := uint64(0)
		if len(resp.Kvs) == 1 {
			cur, _ = strconv.ParseUint(string(resp.Kvs[0].Value), 16, 64)
		}
		if cur != w.After {
			return fmt.Errorf("%w: %s ends at %d, the write follows %d", ErrConflict, w.Conv, cur, w.After)
		}
	}
	for _, k := range w.IfAbsent {
		resp, err := s.cli.Get(ctx, s.bucketKey(k.Bucket, k.Key), clientv3.WithCountOnly())
		if err != nil {
			return s.unavailable("write", err)
		}
		if resp.Count > 0 {
			return fmt.Errorf("%w: %s/%s exists", ErrConflict, k.Bucket, k.Key)
		}
	}
	if w.Guard {
		g, ok := s.guard()
		if !ok {
			return ErrNotLeader
		}
		resp, err := s.cli.Txn(ctx).If(g).Commit()
		if err != nil {
			return s.unavailable("write", err)
		}
		if !resp.Succeeded {
			s.leading.Store(false)
			return ErrNotLeader
		}
	}
	return nil
}

func encodeCounters(row []uint64) []byte {
	var b []byte
	for _, n := range row {
		b = appendUvarint(b, n)
	}
	return b
}

func appendUvarint(b []byte, n uint64) []byte {
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}

// Records returns up to limit records of conv after seq, ascending.
func (s *Etcd) Records(conv string, after uint64, limit int) ([]conversation.Record, error) {
	recs, _, err := s.records(conv, after, limit, 0)
	return recs, err
}

func (s *Etcd) records(conv string, after uint64, limit int, rev int64) ([]conversation.Record, int64, error) {
	if limit <= 0 {
		return nil, rev, nil
	}
	var out []conversation.Record
	from := s.logKey(conv, after+1)
	end := s.logKey(conv, 1<<63)
	for len(out) < limit {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(min(limit-len(out), etcdPage)))}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		ctx, cancel := s.ctx()
		resp, err := s.cli.Get(ctx, from, opts...)
		cancel()
		if err != nil {
			return nil, rev, s.unavailable("read", err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			var r conversation.Record
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				return nil, rev, fmt.Errorf("store: record %s: %w", kv.Key, err)
			}
			if r.Seq != after+uint64(len(out))+1 {
				return nil, rev, fmt.Errorf("store: %s's log has record %d where %d belongs", conv, r.Seq, after+uint64(len(out))+1)
			}
			out = append(out, r)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return out, rev, nil
}

// LastSeq returns the seq of conv's last record.
func (s *Etcd) LastSeq(conv string) (uint64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, s.lastKey(conv))
	if err != nil {
		return 0, s.unavailable("read", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return strconv.ParseUint(string(resp.Kvs[0].Value), 16, 64)
}

// Watch sends conv's records after seq after as they are committed, on
// any node: an etcd watch of the conversation's last seq wakes the reader,
// which reads the log by range from where it stands, so that nothing is
// missed or sent twice across a reconnection or a leader change.
func (s *Etcd) Watch(ctx context.Context, conv string, after uint64) <-chan []conversation.Record {
	out := make(chan []conversation.Record, 16)
	go func() {
		defer close(out)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var wch clientv3.WatchChan
		for {
			recs, rev, err := s.records(conv, after, 512, 0)
			if err != nil {
				// Unreachable: try again shortly, from where it stands.
				select {
				case <-time.After(200 * time.Millisecond):
					continue
				case <-ctx.Done():
					return
				case <-s.done:
					return
				}
			}
			if len(recs) > 0 {
				select {
				case out <- recs:
					after = recs[len(recs)-1].Seq
					continue
				case <-ctx.Done():
					return
				}
			}
			if wch == nil {
				wch = s.cli.Watch(clientv3.WithRequireLeader(ctx), s.lastKey(conv), clientv3.WithRev(rev+1))
			}
			select {
			case _, ok := <-wch:
				if !ok {
					wch = nil
				}
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
	}()
	return out
}

// Follow calls fn with each conversation whose log grew.
func (s *Etcd) Follow(ctx context.Context, fn func(conv string, last uint64)) {
	pre := s.p + "s/"
	for {
		ctx0, cancel := s.ctx()
		resp, err := s.cli.Get(ctx0, pre, clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if err != nil {
			select {
			case <-time.After(200 * time.Millisecond):
				continue
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
		// From this revision on every growth is seen; what grew before it
		// the resync reads.
		fn("", 0)
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := s.cli.Watch(wctx, pre, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				n, err := strconv.ParseUint(string(ev.Kv.Value), 16, 64)
				if err != nil {
					continue
				}
				fn(strings.TrimPrefix(string(ev.Kv.Key), pre), n)
			}
		}
		wcancel()
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		default:
		}
	}
}

// guard is the compare that holds while this node leads: its election
// key still exists with the revision it was created at.
func (s *Etcd) guard() (clientv3.Cmp, bool) {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	if s.election == nil || !s.leading.Load() {
		return clientv3.Cmp{}, false
	}
	return clientv3.Compare(clientv3.CreateRevision(s.election.Key()), "=", s.election.Rev()), true
}

// Lead campaigns for the executor's lease with etcd's election.
func (s *Etcd) Lead(ctx context.Context) (<-chan struct{}, error) {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(max(1, int(s.opts.LeaseTTL/time.Second))))
	if err != nil {
		return nil, s.unavailable("lease", err)
	}
	el := concurrency.NewElection(sess, s.p+"e/")
	if err := el.Campaign(ctx, s.opts.Node); err != nil {
		sess.Orphan()
		return nil, err
	}
	s.leadMu.Lock()
	s.session, s.election = sess, el
	s.leading.Store(true)
	s.leadMu.Unlock()
	lost := make(chan struct{})
	go func() {
		select {
		case <-sess.Done():
		case <-s.done:
		}
		s.leadMu.Lock()
		if s.session == sess {
			// The election stays, so that a guard built from it is
			// refused by etcd itself, not only by this node's belief.
			s.leading.Store(false)
		}
		s.leadMu.Unlock()
		close(lost)
	}()
	return lost, nil
}

// Leading reports whether this node holds the executor's lease, as far as
// it knows; a commit under Guard checks it in etcd.
func (s *Etcd) Leading() bool { return s.leading.Load() }

// Executor names the node that leads.
func (s *Etcd) Executor(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.p+"e/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", s.unavailable("read", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// Abandon stops renewing this node's leases without revoking them, as a
// crash would: another node leads once they run out. Tests kill a node
// with it.
func (s *Etcd) Abandon() {
	s.leadMu.Lock()
	if s.session != nil {
		s.session.Orphan()
	}
	s.leadMu.Unlock()
	s.reportMu.Lock()
	if s.report != nil {
		s.report.Orphan()
	}
	s.reportMu.Unlock()
}

// Report publishes this node's watch lag on its own lease.
func (s *Etcd) Report(lag time.Duration) {
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	if s.report == nil {
		sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(max(5, int(s.opts.LeaseTTL/time.Second))))
		if err != nil {
			return
		}
		s.report = sess
	}
	b, _ := json.Marshal(NodeHealth{Node: s.opts.Node, LagMS: lag.Milliseconds(), Reported: time.Now().UTC().Format(time.RFC3339Nano)})
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.cli.Put(ctx, s.p+"n/"+s.opts.Node, string(b), clientv3.WithLease(s.report.Lease())); err != nil {
		s.report.Orphan()
		s.report = nil
	}
}

// Health asks every endpoint for its status and reads the nodes' reports.
func (s *Etcd) Health(ctx context.Context) ClusterHealth {
	var h ClusterHealth
	h.Executor, _ = s.Executor(ctx)
	for _, ep := range s.cli.Endpoints() {
		c, cancel := context.WithTimeout(ctx, time.Second)
		st, err := s.cli.Status(c, ep)
		cancel()
		eh := EndpointHealth{Endpoint: ep, Healthy: err == nil}
		if err != nil {
			eh.Error = twokey.Clip(err.Error())
		} else {
			eh.Leader = st.Leader == st.Header.MemberId
			eh.Revision = st.Header.Revision
			if len(st.Errors) > 0 {
				eh.Healthy, eh.Error = false, strings.Join(st.Errors, "; ")
			}
		}
		h.Endpoints = append(h.Endpoints, eh)
	}
	c, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if resp, err := s.cli.Get(c, s.p+"n/", clientv3.WithPrefix()); err == nil {
		for _, kv := range resp.Kvs {
			var n NodeHealth
			if json.Unmarshal(kv.Value, &n) == nil {
				h.Nodes = append(h.Nodes, n)
			}
		}
	}
	return h
}

// Get returns a copy of the value at bucket/key, or nil.
func (s *Etcd) Get(bucket, key string) ([]byte, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, s.bucketKey(bucket, key))
	if err != nil {
		return nil, s.unavailable("read", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

// GetAll returns the values at keys of bucket as of one revision.
func (s *Etcd) GetAll(bucket string, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	var rev int64
	for start := 0; start < len(keys); start += 100 {
		part := keys[start:min(len(keys), start+100)]
		ops := make([]clientv3.Op, len(part))
		for i, k := range part {
			var o []clientv3.OpOption
			if rev > 0 {
				o = append(o, clientv3.WithRev(rev))
			}
			ops[i] = clientv3.OpGet(s.bucketKey(bucket, k), o...)
		}
		ctx, cancel := s.ctx()
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return nil, s.unavailable("read", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for i, r := range resp.Responses {
			if kvs := r.GetResponseRange().Kvs; len(kvs) == 1 {
				out[start+i] = kvs[0].Value
			}
		}
	}
	return out, nil
}

// scan reads [from, to) of the etcd keyspace a page at a time, at one
// revision, ascending or descending, until fn returns false.
func (s *Etcd) scan(from, to string, reverse bool, fn func(k, v []byte) bool) error {
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(to), clientv3.WithLimit(etcdPage)}
		if reverse {
			opts = append(opts, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
		}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		ctx, cancel := s.ctx()
		resp, err := s.cli.Get(ctx, from, opts...)
		cancel()
		if err != nil {
			return s.unavailable("read", err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			if !fn(kv.Key, kv.Value) {
				return nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		last := string(resp.Kvs[len(resp.Kvs)-1].Key)
		if reverse {
			to = last
		} else {
			from = last + "\x00"
		}
	}
}

// ForEach calls fn with every key and value of bucket, in key order.
func (s *Etcd) ForEach(bucket string, fn func(k string, v []byte) error) error {
	pre := s.bucketPrefix(bucket)
	var ferr error
	err := s.scan(pre, clientv3.GetPrefixRangeEnd(pre), false, func(k, v []byte) bool {
		ferr = fn(strings.TrimPrefix(string(k), pre), v)
		return ferr == nil
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// Scan calls fn with bucket's keys in [from, to).
func (s *Etcd) Scan(bucket, from, to string, reverse bool, fn func(k, v []byte) bool) error {
	pre := s.bucketPrefix(bucket)
	end := clientv3.GetPrefixRangeEnd(pre)
	if to != "" {
		end = pre + to
	}
	n := len(pre)
	return s.scan(pre+from, end, reverse, func(k, v []byte) bool { return fn(k[n:], v) })
}

// Reverse calls fn with bucket's keys that start with prefix, last first.
func (s *Etcd) Reverse(bucket, prefix string, fn func(k string, v []byte) bool) error {
	pre := s.bucketPrefix(bucket)
	from := pre + prefix
	return s.scan(from, clientv3.GetPrefixRangeEnd(from), true, func(k, v []byte) bool {
		return fn(strings.TrimPrefix(string(k), pre), v)
	})
}

// Put writes one key.
func (s *Etcd) Put(bucket, key string, value []byte) error {
	return s.Commit(&Write{Puts: []Put{{Bucket: bucket, Key: key, Value: value}}})
}

// Stats counts the commits; etcd's own metrics say what they wrote.
func (s *Etcd) Stats() Stats { return Stats{Commits: s.commits.Load()} }

// SetWriteHook installs f to run before every commit; an error from it
// aborts the commit (fault injection in tests).
func (s *Etcd) SetWriteHook(f func() error) {
	s.hookMu.Lock()
	s.hookFn = f
	s.hookMu.Unlock()
}

func (s *Etcd) hook() error {
	s.hookMu.Lock()
	f := s.hookFn
	s.hookMu.Unlock()
	if f == nil {
		return nil
	}
	return f()
}

// Close resigns the lead (another node takes it at once), revokes this
// node's leases and closes the client.
func (s *Etcd) Close() error {
	s.closeOnce.Do(func() {
		s.leadMu.Lock()
		sess := s.session
		s.leadMu.Unlock()
		if sess != nil {
			sess.Close()
		}
		s.reportMu.Lock()
		if s.report != nil {
			s.report.Close()
		}
		s.reportMu.Unlock()
		close(s.done)
		s.cli.Close()
	})
	return nil
}

// Kill drops the connection as a crash would: the leases are left to run
// out, nothing is resigned. Tests kill a node with it.
func (s *Etcd) Kill() {
	s.Abandon()
	s.closeOnce.Do(func() {
		close(s.done)
		s.cli.Close()
	})
}

// Empty reports whether no key is under the prefix.
func (s *Etcd) Empty() (bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, s.p, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false, s.unavailable("read", err)
	}
	return resp.Count == 0, nil
}

// Copied counts what CopyBolt copied.
type Copied struct {
	Conversations int
	Records       int
	Keys          int
}

// CopyBolt copies everything src holds into s, which must be empty: each
// conversation's log in order, then every bucket's keys, the gateway's
// sealed keys (Meta) last, so that a copy cut short holds no gateway a
// node would start on. The records' bytes are copied as they are; the
// audit of an export from the copy verifies as one from the file.
func (s *Etcd) CopyBolt(src *Bolt) (Copied, error) {
	var n Copied
	if empty, err := s.Empty(); err != nil {
		return n, err
	} else if !empty {
		return n, fmt.Errorf("store: etcd already holds keys under %s; copy into an empty prefix (choose another with --etcd-prefix, or delete a copy cut short with 'etcdctl del --prefix %s')", s.p, s.p)
	}
	var convs []string
	if err := src.ForEach(Convs, func(k string, _ []byte) error { convs = append(convs, k); return nil }); err != nil {
		return n, err
	}
	for _, conv := range convs {
		after := uint64(0)
		for {
			recs, err := src.Records(conv, after, 100)
			if err != nil {
				return n, err
			}
			if len(recs) == 0 {
				break
			}
			if err := s.Commit(&Write{Conv: conv, After: after, Records: recs}); err != nil {
				return n, fmt.Errorf("copy %s's records after %d: %w", conv, after, err)
			}
			after = recs[len(recs)-1].Seq
			n.Records += len(recs)
		}
		n.Conversations++
	}
	buckets := []string{}
	for _, b := range allBuckets {
		if b != bRecords && b != bLogIdx && b != Meta && b != Claims {
			buckets = append(buckets, b)
		}
	}
	// A request the file holds executing may have been sent before the
	// file's last stop: it gets a claim, so that the first executor fails
	// it (interrupted) instead of sending it.
	var claims []Put
	if err := src.ForEach(Pending, func(id string, _ []byte) error {
		raw, err := src.Get(Requests, id)
		if err != nil || raw == nil {
			return err
		}
		var r struct {
			State string `json:"state"`
		}
		if json.Unmarshal(raw, &r) == nil && r.State == "executing" {
			claims = append(claims, Put{Bucket: Claims, Key: id, Value: []byte("bolt file (before the migration)")})
		}
		return nil
	}); err != nil {
		return n, err
	}
	if len(claims) > 0 {
		if err := s.Commit(&Write{Puts: claims}); err != nil {
			return n, err
		}
	}
	for _, b := range append(buckets, Meta) {
		var batch []Put
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			err := s.Commit(&Write{Puts: batch})
			n.Keys += len(batch)
			batch = nil
			return err
		}
		err := src.ForEach(b, func(k string, v []byte) error {
			batch = append(batch, Put{Bucket: b, Key: k, Value: v})
			if len(batch) == 100 {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return n, fmt.Errorf("copy bucket %s: %w", b, err)
		}
	}
	return n, nil
}
