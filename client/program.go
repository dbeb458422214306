package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
)

// Program talks to the program API (/v1/programs/, docs/protocol.md Part
// II H) with a program key as its bearer: what a program (an AI agent
// through 'twokey mcp', a CI job) may ask. It proposes calls and reads
// their states; the API has no way for it to approve one.
type Program struct {
	Base string
	HTTP *http.Client
	key  string
}

// OpenProgram returns a program client for the server at base with the
// program key key, reaching it as o says (transport.go's rules). A URL
// that o refuses is a *SettingError here, before anything is dialed.
func OpenProgram(base, key string, o Options) (*Program, error) {
	hc, err := HTTPClient(base, o)
	if err != nil {
		return nil, err
	}
	return NewProgram(base, key, hc), nil
}

// NewProgram returns a program client that sends its requests with hc as
// they are: the server's own MCP endpoint gives it a client whose
// transport serves them in process.
func NewProgram(base, key string, hc *http.Client) *Program {
	return &Program{Base: strings.TrimSuffix(base, "/"), HTTP: hc, key: key}
}

// retryAfter is a refusal whose answer said when to retry (Retry-After).
type retryAfter struct {
	err   *twokey.Error
	after time.Duration
}

func (e *retryAfter) Error() string { return e.err.Error() }
func (e *retryAfter) Unwrap() error { return e.err }

// RetryAfter is the wait a refusal's Retry-After said (over a program's
// rate or monthly cap), or 0.
func RetryAfter(err error) time.Duration {
	var ra *retryAfter
	if errors.As(err, &ra) {
		return ra.after
	}
	return 0
}

// do sends in (JSON, when not nil) and decodes the answer into out.
func (p *Program) do(ctx context.Context, method, path string, in, out any) error {
	req, err := jsonRequest(ctx, method, p.Base+path, in)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.key)
	resp, err := p.HTTP.Do(req)
	if err != nil {
		if ce := AsRefusal(err); ce != nil {
			return ce
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &twokey.Error{Code: twokey.EUnavailable, Message: fmt.Sprintf("cannot reach the twokey server at %s: %v (is 'twokey serve' running? choose another with TWOKEY_SERVER)", p.Base, unwrapURLErr(err)), Err: err}
	}
	defer resp.Body.Close()
	err = answer(resp, method, path, out)
	if errors.Is(err, errForeign) {
		return notTwokey(ctx, p.HTTP, p.Base, err)
	}
	var te *twokey.Error
	if s := resp.Header.Get("Retry-After"); s != "" && errors.As(err, &te) {
		if n, perr := strconv.Atoi(s); perr == nil && n > 0 {
			return &retryAfter{err: te, after: time.Duration(n) * time.Second}
		}
	}
	return err
}

// Templates lists the templates the key may use (GET /v1/programs/templates).
func (p *Program) Templates(ctx context.Context) (*api.ProgramTemplates, error) {
	var out api.ProgramTemplates
	if err := p.do(ctx, http.MethodGet, "/v1/programs/templates", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Template describes one of them (GET /v1/programs/templates/{name}).
func (p *Program) Template(ctx context.Context, name string) (*api.ProgramTemplate, error) {
	var out api.ProgramTemplate
	if err := p.do(ctx, http.MethodGet, "/v1/programs/templates/"+url.PathEscape(name), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Preview says what Submit(in) would submit and the M and policy
// (PROTOCOL 9) it would get, submitting nothing (POST
// /v1/programs/preview). A server from before policies gives no policy:
// Policy.RequiredApprovals is then 0.
func (p *Program) Preview(ctx context.Context, in api.ProgramRequest) (*api.ProgramPreview, error) {
	var out api.ProgramPreview
	if err := p.do(ctx, http.MethodPost, "/v1/programs/preview", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Submit proposes a call (POST /v1/programs/requests).
func (p *Program) Submit(ctx context.Context, in api.ProgramRequest) (*api.ProgramState, error) {
	var out api.ProgramState
	if err := p.do(ctx, http.MethodPost, "/v1/programs/requests", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Request returns request id's state; with wait > 0 the server answers as
// soon as it settles, or when the wait ends (GET
// /v1/programs/requests/{id}?wait=).
func (p *Program) Request(ctx context.Context, id string, wait time.Duration) (*api.ProgramState, error) {
	path := "/v1/programs/requests/" + url.PathEscape(id)
	if wait > 0 {
		path += "?wait=" + url.QueryEscape(wait.String())
	}
	var out api.ProgramState
	if err := p.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Requests lists the program's requests, newest first, only those in
// state when it is not "", at most limit (the server's default when 0).
func (p *Program) Requests(ctx context.Context, state string, limit int) (*api.ProgramRequests, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/programs/requests"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out api.ProgramRequests
	if err := p.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
