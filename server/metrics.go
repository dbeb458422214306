package server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

// Metrics is the server's Prometheus metrics, in a registry of its own
// (never the global one, so two servers in one test process do not
// collide). It hears the engine as an Observer and HTTP through Middleware.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	votes      *prometheus.CounterVec
	executions *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	httpReqs   *prometheus.CounterVec
	refusals   *prometheus.CounterVec
}

var _ engine.Observer = (*Metrics)(nil)

// NewMetrics builds the registry; websockets reports the open WebSockets.
func NewMetrics(websockets func() int) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twokey_requests_total",
		Help: "Requests by the state they reached: submitted, executed, failed, expired, rejected, cancelled."}, []string{"state"})
	m.votes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twokey_approvals_total",
		Help: "Votes on requests by signers, by vote (approve or reject)."}, []string{"vote"})
	m.executions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twokey_executions_total",
		Help: "Upstream calls by service and status: the HTTP status, or the failure reason (timeout, connection_refused, no_secret...)."}, []string{"service", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "twokey_upstream_latency_seconds",
		Help:    "Duration of upstream calls that reached the network, by service.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"service"})
	m.httpReqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twokey_http_requests_total",
		Help: "HTTP requests served, by route pattern and status code."}, []string{"route", "code"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twokey_program_refusals_total",
		Help: "Program key requests refused, by error code (unauthorized, forbidden, rate_limited...)."}, []string{"code"})
	ws := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "twokey_websocket_connections",
		Help: "Open WebSocket connections."}, func() float64 {
		if websockets == nil {
			return 0
		}
		return float64(websockets())
	})
	m.reg.MustRegister(m.requests, m.votes, m.executions, m.latency, m.httpReqs, m.refusals, ws,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Register adds c (the webhook notifier's metrics) to the registry.
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// Registry returns the registry (tests read it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Submitted counts a new request.
func (m *Metrics) Submitted(string, *gate.Request) { m.requests.WithLabelValues("submitted").Inc() }

// Voted counts a vote.
func (m *Metrics) Voted(_ string, _ *gate.Request, approve bool) {
	if approve {
		m.votes.WithLabelValues("approve").Inc()
	} else {
		m.votes.WithLabelValues("reject").Inc()
	}
}

// Closed counts a request that ended without a call.
func (m *Metrics) Closed(_ string, _ *gate.Request, state, _ string) {
	m.requests.WithLabelValues(state).Inc()
}

// Executed counts an upstream call and its latency.
func (m *Metrics) Executed(ex engine.Execution) {
	status := strconv.Itoa(ex.Status)
	state := gate.StateExecuted
	if ex.Reason != "" {
		status, state = ex.Reason, gate.StateFailed
	}
	m.requests.WithLabelValues(state).Inc()
	m.executions.WithLabelValues(ex.Service, status).Inc()
	if ex.Duration > 0 {
		m.latency.WithLabelValues(ex.Service).Observe(ex.Duration.Seconds())
	}
}

// refused counts a refused program request.
func (m *Metrics) refused(code string) { m.refusals.WithLabelValues(code).Inc() }

// Middleware counts each request by the route pattern that served it.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern // set by the ServeMux on this very request
		if route == "" {
			route = "unmatched"
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		m.httpReqs.WithLabelValues(route, strconv.Itoa(code)).Inc()
	})
}

// statusWriter remembers the status code; it passes Flush and Hijack on
// (the WebSocket upgrade needs the latter).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be hijacked")
	}
	if s.code == 0 {
		s.code = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// multiObserver tells several observers, and is the Recorder of those
// that are.
type multiObserver []engine.Observer

var _ engine.Recorder = multiObserver(nil)

func (o multiObserver) Executed(ex engine.Execution) {
	for _, x := range o {
		x.Executed(ex)
	}
}

func (o multiObserver) Closed(conv string, r *gate.Request, state, reason string) {
	for _, x := range o {
		x.Closed(conv, r, state, reason)
	}
}

func (o multiObserver) Voted(conv string, r *gate.Request, approve bool) {
	for _, x := range o {
		x.Voted(conv, r, approve)
	}
}

func (o multiObserver) Submitted(conv string, r *gate.Request) {
	for _, x := range o {
		x.Submitted(conv, r)
	}
}

// Puts gathers what the observers that are Recorders write in a commit.
func (o multiObserver) Puts(ev engine.Event) []store.Put {
	var puts []store.Put
	for _, x := range o {
		if r, ok := x.(engine.Recorder); ok {
			puts = append(puts, r.Puts(ev)...)
		}
	}
	return puts
}
