package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

// scheduleExecution arranges for r, now executing in ch, to be called once
// ch has committed: the durable executing mark comes first, the call after.
func (e *Engine) scheduleExecution(ch *change, r *gate.Request) {
	conv := ch.c.st.ID
	if e.cl != nil {
		// On a shared store the executor claims it under its lease
		// first; another node's executor finds it through its follower.
		c := ch.c
		ch.after = append(ch.after, func() {
			if e.Executing() {
				e.claim(c, r)
			}
		})
		return
	}
	ch.after = append(ch.after, func() {
		e.execWG.Add(1)
		go e.execute(conv, r.Clone())
	})
}

// responseHeaders are the upstream headers a gate.response carries.
var responseHeaders = []string{"Content-Type", "Content-Length", "Content-Encoding", "Date", "Etag",
	"Last-Modified", "Location", "Cache-Control", "Retry-After", "X-Request-Id",
	"X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"}

// execute makes the call of an executing request and records its outcome.
func (e *Engine) execute(convID string, r *gate.Request) {
	defer e.execWG.Done()
	c, err := e.lookup(convID)
	if err != nil {
		return
	}
	svc, err := e.service(r.Payload.Service)
	if err != nil {
		e.finish(c, r, nil, 0, gate.ReasonUpstreamError, "service "+r.Payload.Service+" is no longer in the catalog")
		return
	}
	c.mu.Lock()
	live, expired := c.liveSecret(svc.Name, e.clock.Now())
	convName := c.st.Name
	c.mu.Unlock()
	if svc.Auth == "required" && live == nil {
		detail := fmt.Sprintf("no live secret is stored for %s (none was added, or it was revoked); add one with 'twokey secret add %s --service %s'", svc.Name, convName, svc.Name)
		if expired != nil {
			at := expired.ExpiresAt.UTC().Format(time.RFC3339)
			e.log.Warn("no live secret: the newest expired", AttrConv, convID, AttrRequest, r.ID, AttrService, svc.Name, "expired_at", at)
			detail = fmt.Sprintf("the secret for %s expired at %s; provision a new one with 'twokey secret add %s --service %s'", svc.Name, at, convName, svc.Name)
		}
		e.finish(c, r, nil, 0, gate.ReasonNoSecret, detail)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.UpstreamTimeout)
	defer cancel()
	var body io.Reader
	if len(r.Payload.Body) > 0 {
		body = bytes.NewReader(r.Payload.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Payload.Method, r.Payload.URL, body)
	if err != nil {
		e.finish(c, r, nil, 0, gate.ReasonUpstreamError, "the request could not be built")
		return
	}
	for k, v := range r.Payload.Headers {
		req.Header.Set(k, v)
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "twokey-gateway/1")
	// Only a body the gateway can read can be redacted: ask for it plain
	// (also over a request's own Accept-Encoding). Setting it also stops
	// Go's transport from asking for gzip and unpacking it unseen.
	req.Header.Set("Accept-Encoding", "identity")
	var red redactor = noRedactor{}
	if live != nil && svc.Auth != "none" {
		// The key goes in at the last moment, and only to the URL that
		// passed the service's host check at submission.
		rd, err := e.cfg.Vault.Inject(req, live)
		if err != nil {
			e.log.Error("secret could not be opened", AttrConv, convID, AttrRequest, r.ID, AttrService, svc.Name, AttrError, err.Error())
			e.finish(c, r, nil, 0, gate.ReasonNoSecret, fmt.Sprintf("the secret for %s could not be opened (the server's log says why); provision it again with 'twokey secret add %s --service %s'", svc.Name, convName, svc.Name))
			return
		}
		defer rd.Close()
		red = rd
	}
	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		e.finish(c, r, nil, time.Since(start), classify(err), "")
		return
	}
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, e.cfg.MaxResponseBytes))
	resp.Body.Close()
	dur := time.Since(start)
	if readErr != nil {
		e.finish(c, r, nil, dur, classify(readErr), "")
		return
	}
	contentType := resp.Header.Get("Content-Type")
	enc := encodedAs(resp.Header)
	if enc != "" {
		// Asked for identity, got an encoded body anyway: redaction cannot
		// see into it, so none of it is published, and the headers that
		// describe it are left out (a reader must not try to decode the
		// note). The note itself is redacted below like any body.
		shown, _ := red.RedactString(enc)
		shown = twokey.Clip(shown)
		e.log.Warn("encoded response withheld", AttrConv, convID, AttrRequest, r.ID, AttrService, svc.Name, "content_encoding", shown)
		data = []byte(fmt.Sprintf(withheldNote, shown, len(data)))
		contentType = "text/plain; charset=utf-8"
	}
	// Redaction sees the bytes as they came, text or not; the body is
	// then recorded as text, or as base64 when it is not UTF-8, and its
	// digest is over all of the redacted bytes (PROTOCOL 5).
	data, n := red.Redact(data)
	out := &gate.ResponsePayload{RequestID: r.ID, Status: resp.StatusCode, ContentType: contentType,
		Headers: map[string]string{}, Redactions: n}
	out.SetBody(data, twokey.MaxResponseBody)
	// Every header recorded is redacted, like the body.
	for _, h := range responseHeaders {
		if enc != "" && (h == "Content-Encoding" || h == "Content-Length" || h == "Content-Type") {
			continue
		}
		if v := resp.Header.Get(h); v != "" {
			v, k := red.RedactString(v)
			out.Headers[h] = v
			out.Redactions += k
		}
	}
	out.ContentType, _ = red.RedactString(out.ContentType)
	e.finish(c, r, out, dur, "", "")
}

// withheldNote is the body published in place of an encoded one.
const withheldNote = "[withheld by twokey: the upstream answered with Content-Encoding %s although the gateway asked for identity; " +
	"the %d bytes are not published because what they hold cannot be checked or redacted]"

// encodedAs returns the response's Content-Encoding when it is anything
// but identity, else "".
func encodedAs(h http.Header) string {
	for _, v := range h.Values("Content-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "identity") {
				return strings.Join(h.Values("Content-Encoding"), ", ")
			}
		}
	}
	return ""
}

type redactor interface {
	Redact([]byte) ([]byte, int)
	RedactString(string) (string, int)
}

type noRedactor struct{}

func (noRedactor) Redact(b []byte) ([]byte, int)       { return b, 0 }
func (noRedactor) RedactString(s string) (string, int) { return s, 0 }

// classify turns a transport error into a gate.failed reason.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return gate.ReasonTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return gate.ReasonConnection
	}
	return gate.ReasonUpstreamError
}

// finish records how an execution ended: gate.executed and gate.response,
// or gate.failed with a reason (and a detail for a person, when there is
// more to say). Both carry the decision facts the gateway signs.
func (e *Engine) finish(c *conv, r *gate.Request, resp *gate.ResponsePayload, dur time.Duration, reason, detail string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.cl != nil {
		defer e.cl.inflight.Delete(r.ID)
	}
	ms := dur.Milliseconds()
	var done *gate.Request
	err := e.attempt(c, func() error {
		done = nil
		cur := c.requests[r.ID]
		if cur == nil || cur.State != gate.StateExecuting {
			return nil
		}
		ch := e.begin(c)
		d := cur.Clone()
		// The approvers fixed when the requirement was met (a request from
		// before policies has none fixed: its approvals).
		approvers := slices.Clone(d.Approvers)
		if approvers == nil {
			approvers = d.Counted()
		}
		if resp != nil {
			if _, err := e.gatewayRecord(ch, conversation.KindGateExecuted, gate.ExecutedPayload{
				Header: e.header(c.st.ID), RequestID: r.ID, Status: resp.Status, DurationMS: ms, Approvers: approvers,
				Assignment: maps.Clone(d.Assignment), Decision: gate.DecisionOf(d),
			}); err != nil {
				return fmt.Errorf("sign gate.executed: %w", err)
			}
			resp.Header = e.header(c.st.ID)
			if _, err := e.gatewayRecord(ch, conversation.KindGateResponse, resp); err != nil {
				return fmt.Errorf("sign gate.response: %w", err)
			}
			d.State = gate.StateExecuted
			d.Result = &gate.Result{Status: resp.Status, DurationMS: ms, Approvers: approvers, Seq: ch.st.Seq - 1, BodyDigest: resp.BodyDigest}
		} else {
			if _, err := e.gatewayRecord(ch, conversation.KindGateFailed, gate.ClosedPayload{
				Header: e.header(c.st.ID), RequestID: r.ID, Reason: reason, Detail: detail, Decision: gate.DecisionOf(d)}); err != nil {
				return fmt.Errorf("sign gate.failed: %w", err)
			}
			d.State = gate.StateFailed
			d.Result = &gate.Result{Reason: reason, Detail: detail, DurationMS: ms, Approvers: approvers, Seq: ch.st.Seq}
		}
		ch.putRequest(d)
		if e.cl != nil {
			// The claim has done its work: the outcome is in the log.
			ch.puts = append(ch.puts, store.Put{Bucket: store.Claims, Key: r.ID})
		}
		ev := Event{Kind: EventExecuted, Request: d, Duration: dur, Reason: reason}
		if resp != nil {
			ev.Status = resp.Status
		}
		e.record(ch, ev)
		if err := e.commit(ch); err != nil {
			return err
		}
		done = d
		return nil
	})
	if err != nil {
		// The request stays executing in the store; at the next start (or
		// takeover) it becomes failed/interrupted and is never sent again.
		e.log.Error("cannot record the outcome of an execution", AttrConv, c.st.ID, AttrRequest, r.ID, AttrError, err.Error())
		return
	}
	if done == nil {
		return
	}
	status := 0
	if resp != nil {
		status = resp.Status
	}
	e.log.Info("executed", AttrConv, c.st.ID, AttrRequest, r.ID, AttrService, r.Payload.Service,
		AttrStatus, status, AttrReason, reason, "duration_ms", ms)
	if e.cfg.Observer != nil {
		e.cfg.Observer.Executed(Execution{Time: e.clock.Now(), Conversation: c.st.ID, Request: done,
			Service: r.Payload.Service, Status: status, Duration: dur, Reason: reason})
	}
}
