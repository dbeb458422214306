package server_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/reqlog"
)

type logsPage struct {
	Entries []api.LogEntry `json:"entries"`
	Next    string         `json:"next"`
}

func (g *gateFixture) logsPage(t *testing.T, query string) (result, logsPage) {
	t.Helper()
	r := g.mgmt(t, "GET", "/v0/management/logs?"+query, nil)
	var p logsPage
	if r.status == 200 {
		r.json(t, &p)
	}
	return r, p
}

// TestLogQueryPages: a log query is one page of at most 1000 entries, the
// cursor in its next leads on, and limit=0 ("all") and limit over 1000
// are refused with a message that says how to page.
func TestLogQueryPages(t *testing.T) {
	g := newGateOn(t, newFakeClock(), 2, 2, withMgmt())
	want := map[string]bool{}
	for i := 0; i < 5; i++ {
		want[g.submit(t, 0, fmt.Sprintf("/get?i=%d", i), time.Hour)] = true
	}
	for _, bad := range []string{"limit=0", "limit=1001", "limit=-1", "limit=all", "cursor=Zm9yZ2Vk"} {
		r, _ := g.logsPage(t, bad)
		if r.status != 400 || r.code() != twokey.EBadPayload {
			t.Errorf("%s: %d %s, want 400 bad_payload", bad, r.status, r.body)
		}
		if strings.HasPrefix(bad, "limit") && (!strings.Contains(string(r.body), "1000") || !strings.Contains(string(r.body), "cursor")) {
			t.Errorf("%s: the message does not say how to page: %s", bad, r.body)
		}
	}
	got := map[string]bool{}
	var sizes []int
	q := url.Values{"limit": {"2"}}
	for {
		r, p := g.logsPage(t, q.Encode())
		if r.status != 200 {
			t.Fatalf("page: %d %s", r.status, r.body)
		}
		sizes = append(sizes, len(p.Entries))
		for _, e := range p.Entries {
			if got[e.RequestID] {
				t.Fatalf("%s on two pages", e.RequestID)
			}
			got[e.RequestID] = true
		}
		if p.Next == "" {
			break
		}
		q.Set("cursor", p.Next)
	}
	if fmt.Sprint(sizes) != "[2 2 1]" || len(got) != len(want) {
		t.Fatalf("pages of %v, %d of %d entries", sizes, len(got), len(want))
	}
}

// TestProxyRefusesHugeTargets: a proxied call whose path and query are over
// 8 KiB is refused with 414 before anything is stored; a long one under
// the bound is accepted and its URL is cut at 2 KiB in the request log.
func TestProxyRefusesHugeTargets(t *testing.T) {
	g := newGateOn(t, newFakeClock(), 2, 2, withMgmt())
	key, _ := g.program(t, "bulk", nil)
	before := g.lastSeq(t)
	hdr := bearerHdr(key)
	hdr["Prefer"] = "wait=0"
	huge := g.srv.URL() + "/v1/proxy/ops/httpbin/anything/" + strings.Repeat("a", 30000)
	r := call(t, "GET", huge, nil, hdr)
	if r.status != 414 || r.code() != twokey.ETooLarge || !strings.Contains(string(r.body), "8192") {
		t.Fatalf("a 30,000-byte path: %d %.300s", r.status, r.body)
	}
	if after := g.lastSeq(t); after != before {
		t.Fatalf("the refused call was stored: seq %d -> %d", before, after)
	}
	if _, p := g.logsPage(t, ""); len(p.Entries) != 0 {
		t.Fatalf("the refused call is in the request log: %+v", p.Entries)
	}
	long := g.srv.URL() + "/v1/proxy/ops/httpbin/anything/" + strings.Repeat("b", 7000) + "?token=s3cr3t"
	if r := call(t, "GET", long, nil, hdr); r.status != 202 {
		t.Fatalf("a 7,000-byte path: %d %.300s", r.status, r.body)
	}
	_, p := g.logsPage(t, "")
	if len(p.Entries) != 1 {
		t.Fatalf("entries %d", len(p.Entries))
	}
	if u := p.Entries[0].URL; len(u) > reqlog.MaxFieldBytes+32 || !strings.Contains(u, "bytes cut]") || strings.Contains(u, "s3cr3t") {
		t.Fatalf("the logged URL is %d bytes: %.120s", len(u), u)
	}
}

// TestLogTimeBounds: since and until at the edges, for logs and usage. A
// time before 1970 counts as 1970 (it used to wrap around and match
// nothing); only an absent bound is unbounded (year 1 used to mean
// "none"); a negative duration and a time after year 9999 are refused.
func TestLogTimeBounds(t *testing.T) {
	g := newGateOn(t, newFakeClock(), 2, 2, withMgmt())
	for i := 0; i < 3; i++ {
		g.submit(t, 0, "/get", time.Hour)
	}
	refused := -1
	cases := []struct {
		query string
		want  int // entries, or refused
		days  int // submitted in usage, when not want
	}{
		{query: "", want: 3},
		{query: "since=24h", want: 3},
		{query: "since=20000d", want: 3},
		{query: "since=21000d", want: 3},
		{query: "since=36500d", want: 3},
		{query: "since=100000d", want: 3},
		{query: "since=1000000h", want: 3},
		{query: "since=1969-12-31T23:59:59Z", want: 3},
		{query: "since=1970-01-01T00:00:00Z", want: 3},
		{query: "since=0001-01-01T00:00:00Z", want: 3},
		{query: "until=0001-01-01T00:00:00Z", want: 0},
		{query: "until=0001-01-01T00:00:01Z", want: 0},
		{query: "until=1969-12-31T23:59:59Z", want: 0},
		{query: "until=1970-01-01T00:00:00Z", want: 0},
		{query: "until=2300-01-01T00:00:00Z", want: 3},
		{query: "until=9999-12-31T23:59:59Z", want: 3},
		{query: "since=2300-01-01T00:00:00Z", want: 0},
		{query: "since=9999-12-31T23:59:59Z", want: 0},
		{query: "until=1h", want: 0, days: 3}, // an hour ago is still today
		{query: "since=-24h", want: refused},
		{query: "until=-1h", want: refused},
		{query: "since=-1d", want: refused},
		{query: "since=9999-12-31T23:59:59-01:00", want: refused},
		{query: "until=9999-12-31T23:59:59.5-00:01", want: refused},
		{query: "since=10000-01-01T00:00:00Z", want: refused},
		{query: "since=yesterday", want: refused},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			q := url.Values{}
			if c.query != "" {
				k, v, _ := strings.Cut(c.query, "=")
				q.Set(k, v)
			}
			r, p := g.logsPage(t, q.Encode())
			u := g.mgmt(t, "GET", "/v0/management/usage?by=day&"+q.Encode(), nil)
			if c.want == refused {
				for _, r := range []result{r, u} {
					if r.status != 400 || r.code() != twokey.EBadPayload {
						t.Fatalf("%d %s, want 400 bad_payload", r.status, r.body)
					}
				}
				return
			}
			if r.status != 200 || len(p.Entries) != c.want {
				t.Fatalf("logs: %d, %d entries, want %d: %s", r.status, len(p.Entries), c.want, r.body)
			}
			var usage struct{ Rows []api.UsageRow }
			u.json(t, &usage)
			n := 0
			for _, row := range usage.Rows {
				n += row.Submitted
			}
			// Usage counts whole days: every bound here that keeps an
			// entry keeps its whole day.
			want := c.want
			if c.days != 0 {
				want = c.days
			}
			if u.status != 200 || n != want {
				t.Fatalf("usage: %d, %d submitted, want %d: %s", u.status, n, want, u.body)
			}
		})
	}
}

// TestRequestLogInTheRequestsCommit: a request's log entry is written in
// the commit that accepts the request. The store refuses every write after
// that one, as if the process had died right after it: the entry is there
// all the same. (When the log was written by a background writer after
// the commit, that second write was lost.)
func TestRequestLogInTheRequestsCommit(t *testing.T) {
	g := newGateOn(t, newFakeClock(), 2, 2, withMgmt())
	g.submit(t, 0, "/get", time.Hour) // opens the session, writes its nonce
	if _, p := g.logsPage(t, ""); len(p.Entries) != 1 {
		t.Fatalf("warm-up: %d entries", len(p.Entries))
	}
	var writes atomic.Int32
	st := g.srv.Store()
	st.SetWriteHook(func() error {
		if writes.Add(1) > 1 {
			return errors.New("the process died after the request's commit")
		}
		return nil
	})
	defer st.SetWriteHook(nil)
	id := g.submit(t, 0, "/get?after=crash", time.Hour)
	r, p := g.logsPage(t, "")
	found := false
	for _, e := range p.Entries {
		found = found || (e.RequestID == id && e.Event == reqlog.EventSubmitted)
	}
	if r.status != 200 || len(p.Entries) != 2 || !found {
		t.Fatalf("after the request's commit alone: %d %+v", r.status, p.Entries)
	}
}
