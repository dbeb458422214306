package gate

import (
	"slices"
	"strings"
	"testing"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/templates"
)

func TestNewPreview(t *testing.T) {
	item := &templates.Template{Name: "hn.get-item", Service: "hn", Method: "GET", Endpoint: "/item/{id}.json",
		Params:             []templates.Param{{Name: "id", In: templates.InPath, Type: templates.TypeInteger, Required: true}},
		SuggestedApprovals: 1, Risk: templates.RiskRead}
	on := Config{Enabled: true, Signers: []string{"a", "b", "c"}, RequiredApprovals: 1,
		Rules: []Rule{{Service: "hn", Endpoint: "/item/{id}.json", Method: "*", RequiredApprovals: 3}}}
	in := PreviewInput{Conversation: "ops", Gate: on, Template: item, BaseURL: "https://hn.example/v0",
		Auth: PreviewAuth{Kind: "none", HeaderName: "Authorization", SecretID: "s"}, Params: map[string]string{"id": "8863"}}
	p, err := NewPreview(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET https://hn.example/v0/item/8863.json",
		"service hn (key none), template hn.get-item, risk read",
		"rule hn * /item/{id}.json applies: 3 of 3 signers must approve (suggested 1)",
		"preview only: nothing submitted",
	}
	if !slices.Equal(p.Lines, want) || p.RequiredApprovals != 3 || p.Rule == nil || p.Signers != 3 || p.Auth != (PreviewAuth{Kind: "none"}) {
		t.Fatalf("preview %+v\nlines %q", p, p.Lines)
	}
	if p.Rule == &in.Gate.Rules[0] {
		t.Fatal("the preview's rule points into the gate's rules")
	}
	pl := p.Request.Payload("2030-01-01T00:00:00.000Z")
	if pl.Template != "hn.get-item" || pl.URL != p.URL || pl.Params["id"] != "8863" || pl.ExpiresAt != "2030-01-01T00:00:00.000Z" || pl.RequestID != "" {
		t.Fatalf("payload %+v", pl)
	}

	in.Gate = Config{}
	if p, err = NewPreview(in); err != nil || p.GateEnabled || p.Lines[2] != "the gateway is off in ops: enable it before submitting" {
		t.Fatalf("gate off: %+v %v", p, err)
	}
	in.Params = nil
	if _, err := NewPreview(in); twokey.ErrorCode(err) != twokey.EBadPayload || !strings.Contains(err.Error(), `"id"`) {
		t.Fatalf("missing id: %v", err)
	}
}

func TestCheckRules(t *testing.T) {
	broad := Rule{Service: "httpbin", Endpoint: "*", Method: "POST", RequiredApprovals: 2}
	old := Rule{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 1}
	fresh := Rule{Service: "httpbin", Endpoint: "/anything", Method: "post", RequiredApprovals: 1}
	rules, shadows, err := CheckRules([]Rule{broad, old}, []Rule{broad, old, fresh}, nil, []string{"k1", "k2"})
	if err != nil || len(rules) != 3 || rules[2].Method != "POST" {
		t.Fatalf("rules %v, err %v", rules, err)
	}
	if len(shadows) != 1 || shadows[0].Rule.Endpoint != "/anything" || !shadows[0].Over.Equal(broad) {
		t.Fatalf("shadows %v, want only the new one", shadows)
	}
	_, _, err = CheckRules(nil, []Rule{broad, {Service: "httpbin", Endpoint: "*", Method: "post", RequiredApprovals: 1}}, nil, []string{"k1", "k2"})
	if err == nil || !strings.Contains(twokey.ErrorMessage(err), "rules 1 and 2 both cover httpbin POST *") {
		t.Fatalf("duplicate: %v", err)
	}
	if _, _, err = CheckRules(nil, []Rule{{Service: "*", Endpoint: "*", Method: "*", RequiredApprovals: 3}}, nil, []string{"k1", "k2"}); twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("M over signers: %v", err)
	}
}
