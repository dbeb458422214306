package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
)

// Management talks to the management API (/v0/management/) with the
// operator's management key, sent in X-Management-Key: program keys, the
// request log and usage, the running configuration and the blocks on
// clients that sent wrong keys. Its HTTP client follows transport.go's
// rules like Client's.
type Management struct {
	Base string
	HTTP *http.Client
	key  string
}

// OpenManagement returns a management client for the server at base with
// the management key key, reaching it as o says. A URL that o refuses is a
// *SettingError here, before anything is dialed.
func OpenManagement(base, key string, o Options) (*Management, error) {
	hc, err := HTTPClient(base, o)
	if err != nil {
		return nil, err
	}
	return &Management{Base: strings.TrimSuffix(base, "/"), HTTP: hc, key: key}, nil
}

// do sends in (JSON, when not nil) and decodes the answer into out.
func (m *Management) do(ctx context.Context, method, path string, in, out any) error {
	req, err := jsonRequest(ctx, method, m.Base+path, in)
	if err != nil {
		return err
	}
	req.Header.Set("X-Management-Key", m.key)
	resp, err := m.HTTP.Do(req)
	if err != nil {
		if ce := AsRefusal(err); ce != nil {
			return ce // a redirect not followed: its words, as they are
		}
		hint := "is 'twokey serve' running? choose another with --server or TWOKEY_SERVER"
		if strings.Contains(err.Error(), "x509:") {
			hint = "a server with a self-signed certificate needs --ca-cert FILE or --pin sha256:..., as 'twokey serve' printed"
		}
		return &twokey.Error{Code: twokey.EUnavailable, Message: fmt.Sprintf("cannot reach the twokey server at %s: %v (%s)", m.Base, err, hint), Err: err}
	}
	defer resp.Body.Close()
	err = answer(resp, method, path, out)
	if errors.Is(err, errForeign) {
		return notTwokey(ctx, m.HTTP, m.Base, err)
	}
	var te *twokey.Error
	if resp.StatusCode == http.StatusNotFound && errors.As(err, &te) && strings.HasPrefix(te.Message, "no route") {
		te.Message = "the server's management API is off or unknown here: start the server with a management key (TWOKEY_MANAGEMENT_KEY or management.key)"
	}
	return err
}

// jsonRequest makes a request to url with in as its JSON body (none when
// in is nil).
func jsonRequest(ctx context.Context, method, url string, in any) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// answer reads resp: a refusal (a status of 300 or more) as a
// *twokey.Error with the server's code and words, else the JSON body into
// out (when not nil).
func answer(resp *http.Response, method, path string, out any) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &twokey.Error{Code: twokey.EUnavailable, Message: "reading the server's answer: " + err.Error(), Err: err}
	}
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			return &twokey.Error{Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return &twokey.Error{Code: twokey.EInternal, Message: fmt.Sprintf("server answered %s to %s %s", resp.Status, method, path), Err: errForeign}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, foreign{err})
		}
	}
	return nil
}

// errForeign marks an answer no twokey server gives: a refusal without
// the protocol's error body, or a body that is not the JSON asked for.
var errForeign = errors.New("not a twokey answer")

// foreign is err marked errForeign, in err's words.
type foreign struct{ err error }

func (f foreign) Error() string   { return f.err.Error() }
func (f foreign) Unwrap() []error { return []error{f.err, errForeign} }

// notTwokey asks base's GET /v1/gateway, which every twokey server answers
// with its version, after an answer marked errForeign (err). A server that
// gives no version there is not twokey: the error says so and what to
// check. One that does is twokey, and err stands as it is.
func notTwokey(ctx context.Context, hc *http.Client, base string, err error) error {
	req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/gateway", nil)
	if rerr != nil {
		return err
	}
	resp, rerr := hc.Do(req)
	if rerr != nil {
		return err
	}
	defer resp.Body.Close()
	var gw api.Gateway
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK && json.Unmarshal(data, &gw) == nil && gw.Version != "" {
		return err
	}
	said := "no twokey version"
	if resp.StatusCode != http.StatusOK {
		said = resp.Status + " and no twokey version"
	}
	return notTwokeyError(base, err, ", and GET /v1/gateway gave "+said)
}

// notTwokeyError says that the server at base is not twokey: err is what
// it answered, and then says what GET /v1/gateway gave ("" when err was
// that call's).
func notTwokeyError(base string, err error, then string) error {
	first := "answered with what is not twokey's JSON (" + err.Error() + ")"
	var te *twokey.Error
	if errors.As(err, &te) {
		first = strings.TrimPrefix(te.Message, "server ") // "answered 404 Not Found to POST /v1/sessions"
	}
	if then == "" {
		then = ", with no twokey version"
	}
	return &twokey.Error{Code: twokey.EUnavailable, Err: err, Message: fmt.Sprintf(
		"the server at %s is not a twokey server: it %s%s. Check --server (or TWOKEY_SERVER): it is the URL 'twokey serve' prints as 'listening on ...' (by default http://127.0.0.1:8080), not an upstream's or another service's",
		base, first, then)}
}

func keyPath(name string) string { return "/v0/management/keys/" + url.PathEscape(name) }

// Cluster reports the shared store as the server sees it (docs/ha.md).
func (m *Management) Cluster(ctx context.Context) (api.ClusterStatus, error) {
	var out api.ClusterStatus
	err := m.do(ctx, "GET", "/v0/management/cluster", nil, &out)
	return out, err
}

// Keys lists the program keys.
func (m *Management) Keys(ctx context.Context) ([]api.KeyInfo, error) {
	var out api.KeyList
	err := m.do(ctx, "GET", "/v0/management/keys", nil, &out)
	return out.Keys, err
}

// Key describes one program key.
func (m *Management) Key(ctx context.Context, name string) (api.KeyInfo, error) {
	var out api.KeyInfo
	err := m.do(ctx, "GET", keyPath(name), nil, &out)
	return out, err
}

// CreateKey makes a program key; the answer holds it, shown this once.
func (m *Management) CreateKey(ctx context.Context, in api.KeyCreate) (api.NewKey, error) {
	var out api.NewKey
	err := m.do(ctx, "POST", "/v0/management/keys", in, &out)
	return out, err
}

// RotateKey gives a program a new key; the answer holds it, shown this once.
func (m *Management) RotateKey(ctx context.Context, name string, in api.KeyRotate) (api.NewKey, error) {
	var out api.NewKey
	err := m.do(ctx, "POST", keyPath(name)+"/rotate", in, &out)
	return out, err
}

// EnableKey lets a disabled key work again (on), or stops it until then.
func (m *Management) EnableKey(ctx context.Context, name string, on bool) (api.KeyInfo, error) {
	verb := "/disable"
	if on {
		verb = "/enable"
	}
	var out api.KeyInfo
	err := m.do(ctx, "POST", keyPath(name)+verb, nil, &out)
	return out, err
}

// DeleteKey deletes a program key for good.
func (m *Management) DeleteKey(ctx context.Context, name string) error {
	return m.do(ctx, "DELETE", keyPath(name), nil, nil)
}

// LogQuery selects entries of the request log. Since and Until are a
// duration back from now (24h, 7d) or an RFC 3339 time; empty fields
// select everything.
type LogQuery struct {
	Service, Since, Until, Conversation, Key, Program string
	Events                                            string // comma-separated
	Limit                                             int    // 1 to api.MaxLogPage; 0: the server's default
	Cursor                                            string // a page's Next
}

func (q LogQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"service": q.Service, "since": q.Since, "until": q.Until, "conversation": q.Conversation,
		"key": q.Key, "program": q.Program, "event": q.Events, "cursor": q.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// RequestLog reads one page of the request log, newest first.
func (m *Management) RequestLog(ctx context.Context, q LogQuery) (api.LogPage, error) {
	var out api.LogPage
	err := m.do(ctx, "GET", "/v0/management/logs?"+q.values().Encode(), nil, &out)
	return out, err
}

// UsageQuery selects and groups the usage counters: By is one of
// api.UsageByKey, UsageByService, UsageByDay (empty: by key).
type UsageQuery struct {
	By, Since, Until, Service string
}

// Usage adds up the request log's per-day counters.
func (m *Management) Usage(ctx context.Context, q UsageQuery) (api.UsageReport, error) {
	v := url.Values{}
	for k, s := range map[string]string{"by": q.By, "since": q.Since, "until": q.Until, "service": q.Service} {
		if s != "" {
			v.Set(k, s)
		}
	}
	var out api.UsageReport
	err := m.do(ctx, "GET", "/v0/management/usage?"+v.Encode(), nil, &out)
	return out, err
}

// Config returns the configuration the server runs with, secrets masked.
func (m *Management) Config(ctx context.Context) (map[string]any, error) {
	var out api.RunningConfig
	err := m.do(ctx, "GET", "/v0/management/config", nil, &out)
	return out.Config, err
}

// Bans lists the clients blocked after wrong management keys.
func (m *Management) Bans(ctx context.Context) ([]api.Ban, error) {
	var out api.BanList
	err := m.do(ctx, "GET", "/v0/management/bans", nil, &out)
	return out.Bans, err
}

// Unban lifts the block on addr (as Bans names it, or an address), or on
// every client when addr is "", and returns how many it lifted.
func (m *Management) Unban(ctx context.Context, addr string) (int, error) {
	path := "/v0/management/bans"
	if addr != "" {
		path += "?addr=" + url.QueryEscape(addr)
	}
	var out api.Unbanned
	err := m.do(ctx, "DELETE", path, nil, &out)
	return out.Unbanned, err
}
