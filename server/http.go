// Package server puts the engine on the wire: the HTTP API and WebSocket
// of PROTOCOL.md section 7, and the daemon that owns the whole lifecycle
// (store, vault, keys, engine, listeners) from start to orderly shutdown.
package server

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/engine"
)

// API serves the protocol's HTTP endpoints.
type API struct {
	eng *engine.Engine
	log *slog.Logger
	ws  *wsHub
	mux *http.ServeMux
}

// NewAPI builds the handler for eng.
func NewAPI(eng *engine.Engine, log *slog.Logger) *API {
	a := &API{eng: eng, log: log, mux: http.NewServeMux()}
	a.ws = newWSHub(eng, log)
	m := a.mux
	m.HandleFunc("GET /v1/gateway", a.gateway)
	m.HandleFunc("POST /v1/sessions", a.session)
	m.HandleFunc("POST /v1/conversations", a.create)
	m.HandleFunc("GET /v1/conversations", a.auth(a.list))
	m.HandleFunc("POST /v1/conversations/{id}/messages", a.post)
	m.HandleFunc("GET /v1/conversations/{id}/messages", a.auth(a.messages))
	m.HandleFunc("GET /v1/conversations/{id}/gate", a.auth(a.gate))
	m.HandleFunc("GET /v1/conversations/{id}/requests", a.auth(a.requests))
	m.HandleFunc("GET /v1/conversations/{id}/requests/{rid}", a.auth(a.request))
	m.HandleFunc("GET /v1/conversations/{id}/checkpoint", a.auth(a.checkpoint))
	m.HandleFunc("POST /v1/conversations/{id}/preview", a.auth(a.preview))
	m.HandleFunc("POST /v1/conversations/{id}/rules/check", a.auth(a.checkRules))
	m.HandleFunc("GET /v1/catalog", a.catalog)
	m.HandleFunc("GET /v1/ws", a.ws.serve)
	m.HandleFunc("GET /healthz", a.healthz)
	a.mountApp()
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, log, twokey.Errorf(twokey.ENotFound, "no route %s %s; see docs/protocol.md", r.Method, r.URL.Path))
	})
	return a
}

// Handle adds a route (the operator surface mounts its own).
func (a *API) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	securityHeaders(w.Header())
	if refuseDotSegments(w, r, a.log) { // before the mux cleans and redirects
		return
	}
	a.mux.ServeHTTP(w, r)
}

// CloseWebSockets sends every WebSocket a close frame and closes it.
func (a *API) CloseWebSockets() { a.ws.closeAll() }

// WebSockets returns the number of open WebSocket connections.
func (a *API) WebSockets() int { return a.ws.count() }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeError answers with the protocol's error body. An unclassified
// error is logged and answered with a generic message.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	code := twokey.ErrorCode(err)
	if code == twokey.EInternal || code == twokey.EUnavailable {
		log.Error("request failed", engine.AttrCode, code, engine.AttrError, err.Error())
	}
	var b api.ErrorBody
	b.Error.Code = code
	b.Error.Message = twokey.ErrorMessage(err)
	if code == twokey.EUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="twokey"`)
	}
	writeJSON(w, twokey.HTTPStatus(code), b)
}

// readBody reads a request body of at most the envelope limit, within the
// body timeout (limits.body_timeout): a client that sends its body slowly
// is cut then, whatever its pace, so that it cannot hold a connection and
// a goroutine for as long as it trickles.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	timeout := bodyTimeout(r)
	rc := http.NewResponseController(w)
	// Not supported (a recorder in a unit test): read without a deadline.
	deadline := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
	body, err := readAll(http.MaxBytesReader(w, r.Body, twokey.MaxEnvelopeBytes), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, twokey.Errorf(twokey.ETooLarge, "body is over %d bytes, the envelope limit", twokey.MaxEnvelopeBytes)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.Header().Set("Connection", "close")
			return nil, twokey.Errorf(twokey.EBadEnvelope, "the body did not arrive within %s (limits.body_timeout); send the whole envelope at once", timeout)
		}
		return nil, twokey.Errorf(twokey.EBadEnvelope, "cannot read the body: %v", err)
	}
	if deadline {
		_ = rc.SetReadDeadline(time.Time{}) // the rest of the request has no read to bound
	}
	return body, nil
}

// readAll is io.ReadAll, its buffer sized from the start for a declared
// length within the envelope limit (and the byte that meets the end), so
// that an envelope is read into one allocation, not grown into several.
func readAll(r io.Reader, length int64) ([]byte, error) {
	if length <= 0 || length > twokey.MaxEnvelopeBytes {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, length+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // more than declared: grow as io.ReadAll does
		}
	}
}

// bearer extracts the token from the Authorization header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

type authedFunc func(w http.ResponseWriter, r *http.Request, key string)

func (a *API) auth(f authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, err := a.eng.CheckToken(bearer(r))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		f(w, r, key)
	}
}

func (a *API) gateway(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, api.Gateway{Version: engine.Version, SigningKey: a.eng.GatewayKey(), BoxKey: a.eng.BoxKey()})
}

func (a *API) session(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	tok, exp, err := a.eng.OpenSession(body)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 201, api.Session{Token: tok, ExpiresAt: exp.UTC().Format("2006-01-02T15:04:05.000Z07:00")})
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	rec, err := a.eng.Create(body)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 201, rec)
}

func (a *API) post(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	rec, err := a.eng.Post(r.PathValue("id"), body)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 201, rec)
}

func (a *API) list(w http.ResponseWriter, r *http.Request, key string) {
	writeJSON(w, 200, api.ConversationList{Conversations: a.eng.Conversations(key)})
}

func queryUint(r *http.Request, name string, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, twokey.Errorf(twokey.EBadPayload, "query parameter %s=%q is not a non-negative integer", name, v)
	}
	return n, nil
}

func (a *API) messages(w http.ResponseWriter, r *http.Request, key string) {
	after, err := queryUint(r, "after", 0)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	limit, err := queryUint(r, "limit", twokey.DefaultPageRecords)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	if limit > twokey.MaxPageRecords {
		writeError(w, a.log, twokey.Errorf(twokey.ETooLarge, "limit %d is over the %d records a page holds", limit, twokey.MaxPageRecords))
		return
	}
	recs, err := a.eng.Records(r.PathValue("id"), key, after, int(limit))
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	if recs == nil {
		recs = nil
	}
	writeJSON(w, 200, api.RecordPage{Records: nonNilRecords(recs)})
}

func (a *API) gate(w http.ResponseWriter, r *http.Request, key string) {
	g, err := a.eng.Gate(r.PathValue("id"), key)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, g)
}

func (a *API) request(w http.ResponseWriter, r *http.Request, key string) {
	st, err := a.eng.Request(r.PathValue("id"), key, r.PathValue("rid"))
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, st)
}

func (a *API) requests(w http.ResponseWriter, r *http.Request, key string) {
	limit, err := queryUint(r, "limit", 100)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	list, err := a.eng.Requests(r.PathValue("id"), key, r.URL.Query().Get("state"), int(limit))
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, api.RequestList{Requests: list})
}

func (a *API) catalog(w http.ResponseWriter, r *http.Request) {
	c := a.eng.Catalog()
	writeJSON(w, 200, api.Catalog{Services: c.Services(), Templates: c.Templates()})
}

func (a *API) checkpoint(w http.ResponseWriter, r *http.Request, key string) {
	cp, err := a.eng.Checkpoint(r.PathValue("id"), key)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, cp)
}
