package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/reqlog"
)

// The management API's request log endpoints: GET /v0/management/logs
// (one page of entries) and GET /v0/management/usage (the per-day
// counters added up).

// bound reads the time bound ?name=: a duration back from now ("24h",
// "7d", never negative) or an RFC 3339 time. Absent is unbounded (set is
// zero). A time before 1970 (the log's first instant, also where a long
// duration may reach) counts as 1970; a time after year 9999 is refused.
func (o *operator) bound(r *http.Request, name string) (t time.Time, err error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	if strings.HasPrefix(strings.TrimSpace(s), "-") {
		return time.Time{}, twokey.Errorf(twokey.EBadPayload, "%s=%q: a duration back from now cannot be negative; give one such as 24h or 7d, or an RFC 3339 time", name, twokey.ClipAt(s, 200))
	}
	now := o.eng.Now()
	if days, ok := strings.CutSuffix(s, "d"); ok && days != "" && strings.Trim(days, "0123456789") == "" {
		// Days are counted here, not by config.ParseDuration, which stops
		// at 100 years: any count of days reaching before 1970 is 1970.
		n, perr := strconv.ParseUint(days, 10, 64)
		if perr != nil || n > uint64(now.Sub(reqlog.Epoch)/(24*time.Hour)) {
			return reqlog.Epoch, nil
		}
		t = now.Add(-time.Duration(n) * 24 * time.Hour)
	} else if d, derr := config.ParseDuration(s); derr == nil {
		t = now.Add(-d) // reqlog.Bound clamps a time before 1970
	} else if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
		return time.Time{}, twokey.Errorf(twokey.EBadPayload, "%s=%q: give a duration back from now (24h, 7d) or an RFC 3339 time (2026-01-02T15:04:05Z)", name, twokey.ClipAt(s, 200))
	}
	return reqlog.Bound(name, t)
}

func (o *operator) filter(r *http.Request) (reqlog.Filter, error) {
	q := r.URL.Query()
	f := reqlog.Filter{Service: q.Get("service"), Conversation: q.Get("conversation"), Key: q.Get("key"), Program: q.Get("program")}
	if f.Conversation != "" {
		if id, _, err := o.eng.ResolveConversation(f.Conversation); err == nil {
			f.Conversation = id
		}
	}
	if ev := q.Get("event"); ev != "" {
		f.Events = strings.Split(ev, ",")
	}
	var err error
	if f.Since, err = o.bound(r, "since"); err != nil {
		return f, err
	}
	if f.Until, err = o.bound(r, "until"); err != nil {
		return f, err
	}
	return f, nil
}

// logsList is GET /v0/management/logs: one page, newest first, and the
// cursor of the next when there may be more.
func (o *operator) logsList(w http.ResponseWriter, r *http.Request) {
	f, err := o.filter(r)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	f.Limit = reqlog.DefaultLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > reqlog.MaxLimit {
			writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "limit=%q: a page holds 1 to %d entries (there is no limit for all of them); "+
				"follow each page's next with cursor=, or run 'twokey calls --all'", twokey.ClipAt(s, 200), reqlog.MaxLimit))
			return
		}
		f.Limit = n
	}
	f.Cursor = r.URL.Query().Get("cursor")
	page, err := o.logs.Query(f)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// usage is GET /v0/management/usage: the per-day counters of the days the
// bounds fall in, added up by key, service or day.
func (o *operator) usage(w http.ResponseWriter, r *http.Request) {
	f, err := o.filter(r)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	by := r.URL.Query().Get("by")
	if by == "" {
		by = reqlog.ByKey
	}
	rows, err := o.logs.Usage(by, f)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	first, last := reqlog.Days(f)
	writeJSON(w, http.StatusOK, api.UsageReport{By: by, Rows: rows, FirstDay: first, LastDay: last})
}

// tooLongTarget answers 414 when a proxied call's request target (path and
// query) is over twokey.MaxRequestTarget, before anything is stored, and
// says whether it did.
func (o *operator) tooLongTarget(w http.ResponseWriter, r *http.Request) bool {
	n := len(r.RequestURI)
	if n == 0 {
		n = len(r.URL.RequestURI())
	}
	if n <= twokey.MaxRequestTarget {
		return false
	}
	writeJSON(w, http.StatusRequestURITooLong, api.ErrorBody{Error: api.ErrorDetail{Code: twokey.ETooLarge,
		Message: fmt.Sprintf("the request target (path and query) is %d bytes; a proxied call may have at most %d", n, twokey.MaxRequestTarget)}})
	return true
}
