package server_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/twokey/twokey/internal/testutil"
)

// scrape reads /metrics with the Prometheus text parser and returns the
// value of each sample as "name{k=v,...}" (labels in the order given).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	r := call(t, "GET", url+"/metrics", nil, nil)
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, r.body)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			key := name + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			key += "}"
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestMetricsMoveWhenARequestExecutes(t *testing.T) {
	g := newGate(t, 2, 2)
	before := scrape(t, g.srv.URL())
	if _, ok := before["twokey_websocket_connections{}"]; !ok {
		t.Fatalf("no WebSocket gauge: %v", before)
	}
	id := g.submit(t, 0, "/get", time.Hour)
	if err := g.approve(t, 1, id); err != nil {
		t.Fatal(err)
	}
	g.wait(t, id) // over a WebSocket
	after := scrape(t, g.srv.URL())
	moved := map[string]float64{
		"twokey_requests_total{state=submitted}":                                          1,
		"twokey_requests_total{state=executed}":                                           1,
		"twokey_approvals_total{vote=approve}":                                            1,
		"twokey_executions_total{service=httpbin,status=200}":                             1,
		"twokey_upstream_latency_seconds{service=httpbin}":                                1,
		"twokey_http_requests_total{code=201,route=POST /v1/sessions}":                    1,
		"twokey_http_requests_total{code=200,route=GET /metrics}":                         1,
		"twokey_http_requests_total{code=201,route=POST /v1/conversations/{id}/messages}": 2,
	}
	for k, d := range moved {
		if after[k]-before[k] < d {
			t.Errorf("%s moved from %v to %v", k, before[k], after[k])
		}
	}
	// A refused program request is counted by its code.
	srv := testutil.StartServer(t, nil, func(o *testutil.Options) { o.Metrics.Enabled = false })
	if r := call(t, "GET", srv.URL()+"/metrics", nil, nil); r.status != 404 {
		t.Fatalf("disabled /metrics: %d", r.status)
	}
	call(t, "POST", g.srv.URL()+"/v1/programs/requests", map[string]string{"template": "hn.top-stories"}, bearerHdr("tk_bad"))
	if v := scrape(t, g.srv.URL())["twokey_program_refusals_total{code=unauthorized}"]; v != 1 {
		t.Fatalf("refusals: %v", v)
	}
}
