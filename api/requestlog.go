package api

import "time"

// The request log as the management API answers it: GET
// /v0/management/logs (a page of entries) and GET /v0/management/usage
// (the per-day counters added up). Package reqlog keeps the log, and
// stores each entry in this shape.

// MaxLogPage is the most entries one page of the request log holds.
const MaxLogPage = 1000

// What usage is grouped by (?by=).
const (
	UsageByKey     = "key"
	UsageByService = "service"
	UsageByDay     = "day"
)

// LogEntry is one line of the request log.
type LogEntry struct {
	Time         time.Time `json:"time"`
	Event        string    `json:"event"`
	Conversation string    `json:"conversation"`
	RequestID    string    `json:"request_id"`
	Template     string    `json:"template,omitempty"`
	Service      string    `json:"service"`
	Method       string    `json:"method"`
	URL          string    `json:"url"` // query values masked
	Status       int       `json:"status,omitempty"`
	DurationMS   float64   `json:"duration_ms,omitempty"`
	Approvers    []string  `json:"approvers,omitempty"`
	Submitter    string    `json:"submitter"` // a signer's key id, or the gateway's for a program
	Program      string    `json:"program,omitempty"`
	KeyPrefix    string    `json:"key_prefix,omitempty"` // the display prefix of the program key the request came with
	Reason       string    `json:"reason,omitempty"`
}

// LogPage is one page of the request log, newest first.
type LogPage struct {
	Entries []LogEntry `json:"entries"`
	// Next, when set, is the cursor of the next page: there may be more
	// entries (a page stops at its limit, or after a bounded scan).
	Next string `json:"next,omitempty"`
}

// UsageRow is one row of usage: counts and upstream latency of a group.
type UsageRow struct {
	Group     string  `json:"group"`
	Submitted int     `json:"submitted"`
	Executed  int     `json:"executed"`
	Failed    int     `json:"failed"`
	Expired   int     `json:"expired"`
	Rejected  int     `json:"rejected"`
	Cancelled int     `json:"cancelled"`
	P50MS     float64 `json:"p50_ms"`
	P95MS     float64 `json:"p95_ms"`
}

// UsageReport is GET /v0/management/usage: the rows, grouped by By, and
// the UTC days counted ("" for an open end). (Its fields are in the order
// the server has always written them.)
type UsageReport struct {
	By       string     `json:"by"`
	FirstDay string     `json:"first_day"`
	LastDay  string     `json:"last_day"`
	Rows     []UsageRow `json:"rows"`
}
