package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/agent"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/programs"
)

// The MCP endpoint, /v1/mcp: agent's tools over Streamable HTTP, for an
// agent that reaches the server with a program key (docs/operations.md,
// MCP). Every request must carry a program key, checked as the program
// endpoints check it (401 before any MCP otherwise), and an MCP session is
// bound to the program that opened it. A tool call acts through a
// client.Program whose transport serves its requests with the server's own
// handler in process (inProcess), with the key that tool call's HTTP
// request carried: each goes through the /v1/programs/ handlers, so the
// key is authenticated again and its policy (conversation, templates,
// rate, monthly cap) applied by the one code that applies it, and a key
// revoked mid-session is refused at its next call.

// mcpIdle is how long an MCP session may go without a request before the
// server drops it (the client then opens a new one).
const mcpIdle = time.Hour

// inProcessBase is the base URL of the in-process program client; its
// requests never leave the process.
const inProcessBase = "http://twokey.in-process"

// programKey is the context key of the program the MCP request's key
// authenticated, for the token verifier that binds sessions.
type programKey struct{}

// mcpHandler serves /v1/mcp, with api serving the tools' program calls.
func (o *operator) mcpHandler(api http.Handler) http.Handler {
	hc := &http.Client{Transport: inProcess{h: api}}
	srv := agent.New(agent.Options{Version: engine.Version,
		Program: func(_ context.Context, req *mcp.CallToolRequest) (*client.Program, error) {
			var h http.Header
			if req.Extra != nil {
				h = req.Extra.Header
			}
			return client.NewProgram(inProcessBase, programKeyOf(h), hc), nil
		}})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		SessionTimeout: mcpIdle,
		// Every request carries a program key, checked before the MCP
		// handler sees it, and nothing is authorized by a cookie: a page
		// that rebinds a name to this server has no key to send. The check
		// would refuse a reverse proxy on this machine that passes its own
		// Host.
		DisableLocalhostProtection: true,
		MaxRequestBodyBytes:        twokey.MaxEnvelopeBytes,
	})
	// The session is bound to the program that opened it (the SDK refuses
	// a request of another program on it with 403).
	bind := auth.RequireBearerToken(func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		p, _ := ctx.Value(programKey{}).(*programs.Program)
		if p == nil {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{UserID: p.Name}, nil
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prog, key, ok := o.program(w, r)
		if !ok {
			return
		}
		if r.Method == http.MethodPost {
			// Read within the body timeout and the envelope limit, as every
			// POST of the API is.
			body, err := readBody(w, r)
			if err != nil {
				writeError(w, o.log, err)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		// Shutdown ends the long-lived streams (as it ends long polls).
		ctx, cancel := context.WithCancel(context.WithValue(r.Context(), programKey{}, prog))
		defer cancel()
		stop := context.AfterFunc(o.ctx, cancel)
		defer stop()
		r = r.WithContext(ctx)
		if bearer(r) != key { // the key came as X-Api-Key: the tools read the bearer
			r.Header = r.Header.Clone()
			r.Header.Set("Authorization", "Bearer "+key)
		}
		bind.ServeHTTP(w, r)
	})
}

// programKeyOf is the program key in an MCP request's header: the bearer,
// else X-Api-Key (as the program endpoints read it).
func programKeyOf(h http.Header) string {
	if h == nil {
		return ""
	}
	return presented(&http.Request{Header: h})
}

// inProcess is an http.RoundTripper that serves each request with h, the
// server's own API handler, in this process. It serves only the program
// endpoints: the MCP endpoint's program client can reach nothing else.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.RequestURI = req.URL.RequestURI()
	r.Host = req.URL.Host
	r.RemoteAddr = "in-process"
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	if r.Body == nil {
		r.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}}
	if !strings.HasPrefix(req.URL.Path, "/v1/programs/") {
		writeError(rec, nil, twokey.Errorf(twokey.EForbidden, "the MCP endpoint reaches only /v1/programs/"))
	} else {
		t.h.ServeHTTP(rec, r)
	}
	if req.Body != nil {
		req.Body.Close()
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{Status: strconv.Itoa(rec.status) + " " + http.StatusText(rec.status), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: rec.header, Body: io.NopCloser(&rec.body),
		ContentLength: int64(rec.body.Len()), Request: req}, nil
}

// recorder is the http.ResponseWriter inProcess serves into: the answer is
// read once the handler returns.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
