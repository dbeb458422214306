package engine

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

// TestEngineAndFoldAgree is the property that keeps the engine and every
// reader of its log (audit verify, the TUI, the CLI) to one meaning per
// kind: whatever members do, in whatever order, each record the engine
// writes is one gate.Fold accepts, and the fold of the log is the
// engine's live state: members, gate, open proposals, stored secrets, and
// every request with its votes, M, rule, endpoint and outcome.
//
// Each seed drives random members through random actions (chat, requests
// on paths that different rules govern, approvals and rejections, some
// with a wrong digest, cancellations, membership proposals and their
// approvals, secrets stored and revoked, the clock moved past expiries);
// the engine refuses what it must and the test does not care which. Calls
// that reach M go to a loopback upstream (fun) or fail for want of a key
// (httpbin without a secret).
func TestEngineAndFoldAgree(t *testing.T) {
	kinds := map[string]int{}
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { agreeRun(t, seed, 250, false, kinds) })
	}
	// The runs must have reached the paths that matter, or they prove little.
	for _, k := range []string{conversation.KindGateExecuted, conversation.KindGateResponse, conversation.KindGateApprove,
		conversation.KindGateRejected, conversation.KindGateExpired, conversation.KindMemberChanged, conversation.KindGateCancelled,
		conversation.KindGateSecretRevoked} {
		if kinds[k] == 0 {
			t.Errorf("no %s in any run: the random walks did not reach it", k)
		}
	}
}

// TestEngineAndFoldAgreeOnPolicies is the same property under the rules
// of PROTOCOL 9: random groups (overlapping, a key in several), rules with
// require, submitter_counts false, reason_required, a cool-off and a veto,
// random vote orders, reasons, groups changed by proposals and the clock
// moved through cool-offs. Besides the fold accepting every record and
// equalling the engine's state, every decision the engine made is checked
// against a brute-force search over assignments of approvers to slots:
// an executed or approved request's approvers meet its requirement, a
// pending one's approvals do not and could still, a rejected one could not.
func TestEngineAndFoldAgreeOnPolicies(t *testing.T) {
	kinds := map[string]int{}
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { agreeRun(t, 100+seed, 250, true, kinds) })
	}
	for _, k := range []string{conversation.KindGateApproved, conversation.KindGateExecuted, conversation.KindGateRejected,
		conversation.KindMemberChanged, conversation.KindGateCancelled} {
		if kinds[k] == 0 {
			t.Errorf("no %s in any run: the random walks did not reach it", k)
		}
	}
	if kinds["vetoed"] == 0 || kinds["assignment"] == 0 || kinds["unreachable"] == 0 {
		t.Errorf("the walks reached %d vetoes, %d executions with an assignment, %d early rejections: each must happen", kinds["vetoed"], kinds["assignment"], kinds["unreachable"])
	}
}

// bruteMeets says whether approvers meet p by trying every assignment of
// each counted key to one of its groups or to none.
func bruteMeets(p gate.Policy, groups map[string][]string, approvers []string, submitter string) bool {
	var keys []string
	for _, k := range approvers {
		if (p.SubmitterCounts || k != submitter) && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) < p.RequiredApprovals {
		return false
	}
	var try func(i int, filled map[string]int) bool
	try = func(i int, filled map[string]int) bool {
		if i == len(keys) {
			for _, r := range p.Require {
				if filled[r.Group] < r.Approvals {
					return false
				}
			}
			return true
		}
		if try(i+1, filled) {
			return true
		}
		for _, r := range p.Require {
			if slices.Contains(groups[r.Group], keys[i]) {
				filled[r.Group]++
				ok := try(i+1, filled)
				filled[r.Group]--
				if ok {
					return true
				}
			}
		}
		return false
	}
	return try(0, map[string]int{})
}

// randomGroups puts each key in some of the groups g1..g3 at random.
func randomGroups(rnd *mrand.Rand, keys []string) map[string][]string {
	groups := map[string][]string{}
	for _, g := range []string{"g1", "g2", "g3"} {
		groups[g] = []string{}
		for _, k := range keys {
			if rnd.IntN(2) == 0 {
				groups[g] = append(groups[g], k)
			}
		}
	}
	return groups
}

// randomPolicyRules is a rule set of PROTOCOL 9's fields that the groups
// and signers can meet (rules they cannot meet are left out).
func randomPolicyRules(rnd *mrand.Rand, groups map[string][]string, signers []string) []gate.Rule {
	base := []gate.Rule{
		{Service: "fun", Endpoint: "/admin/{x}", Method: "*"},
		{Service: "fun", Endpoint: "*", Method: "GET"},
		{Service: "fun", Endpoint: "/leet", Method: "POST"},
		{Service: "*", Endpoint: "*", Method: "*"},
	}
	var out []gate.Rule
	for _, r := range base {
		for range 8 { // a few tries at a rule the signers can meet
			r.RequiredApprovals = 1 + rnd.IntN(len(signers))
			r.Require = nil
			for _, g := range []string{"g1", "g2", "g3"} {
				if rnd.IntN(3) == 0 {
					r.Require = append(r.Require, gate.Require{Group: g, Approvals: 1 + rnd.IntN(2)})
				}
			}
			r.SubmitterCounts = nil
			if rnd.IntN(3) == 0 {
				f := false
				r.SubmitterCounts = &f
			}
			r.ReasonRequired = rnd.IntN(4) == 0
			r.DelaySeconds, r.Veto = 0, 0
			if rnd.IntN(2) == 0 {
				r.DelaySeconds = 60 * (1 + rnd.IntN(10))
				r.Veto = rnd.IntN(3)
				if r.Veto > len(signers) {
					r.Veto = 1
				}
			}
			if gate.CheckPolicy(r.Policy(), groups, signers) == nil {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func agreeRun(t *testing.T, seed uint64, steps int, policies bool, kinds map[string]int) {
	rnd := mrand.New(mrand.NewPCG(seed, 7))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	defer up.Close()
	st, err := store.Open(filepath.Join(t.TempDir(), "twokey.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clk := clock.NewFake(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	cfg := testConfig(t, st, clk)
	for _, svc := range []string{"fun", "httpbin"} {
		if err := cfg.Catalog.OverrideBaseURL(svc, up.URL); err != nil {
			t.Fatal(err)
		}
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			e.Close()
		}
	}()
	people := make([]*conversation.Identity, 6)
	byKey := map[string]*conversation.Identity{}
	for i := range people {
		if people[i], err = conversation.NewIdentity(fmt.Sprint("p", i)); err != nil {
			t.Fatal(err)
		}
		byKey[people[i].KeyID()] = people[i]
	}
	n := 0 // makes every payload unique (the server accepts each once)
	header := func(conv string) conversation.Header {
		n++
		return conversation.Header{Conversation: conv, CreatedAt: conversation.FormatTime(clk.Now().Add(time.Duration(n) * time.Millisecond)), Gateway: e.GatewayKey()}
	}
	post := func(by *conversation.Identity, conv, kind string, payload any) error {
		env, _ := signed(t, by, kind, payload)
		var err error
		if kind == conversation.KindConversationCreate {
			_, err = e.Create(env)
		} else {
			_, err = e.Post(conv, env)
		}
		return err
	}
	admin := people[0]
	convID := uid(seed, 0, 0)
	members := []conversation.Member{{Key: people[1].KeyID(), Name: "p1"}, {Key: people[2].KeyID(), Name: "p2"}, {Key: people[3].KeyID()}}
	if err := post(admin, convID, conversation.KindConversationCreate, conversation.CreatePayload{Header: header(convID), Name: "agree", Members: members}); err != nil {
		t.Fatal(err)
	}
	rules := []gate.Rule{
		{Service: "fun", Endpoint: "/admin/{x}", Method: "*", RequiredApprovals: 3},
		{Service: "fun", Endpoint: "*", Method: "GET", RequiredApprovals: 1},
		{Service: "fun", Endpoint: "/leet", Method: "POST", RequiredApprovals: 2},
	}
	enable := gate.EnablePayload{Header: header(convID), RequiredApprovals: 2, Rules: rules}
	if policies {
		signers := []string{admin.KeyID(), people[1].KeyID(), people[2].KeyID(), people[3].KeyID()}
		enable.Groups = randomGroups(rnd, signers)
		enable.Rules = randomPolicyRules(rnd, enable.Groups, signers)
	}
	if err := post(admin, convID, conversation.KindGateEnable, enable); err != nil {
		t.Fatal(err)
	}
	boxPub := *cfg.BoxPub
	c, _ := e.lookup(convID)
	snapshot := func() (gate.Config, []conversation.Member, []*gate.Request, []*gate.Proposal, []string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		var reqs []*gate.Request
		for _, r := range c.requests {
			reqs = append(reqs, r)
		}
		var props []*gate.Proposal
		for _, p := range c.proposals {
			props = append(props, p)
		}
		var secrets []string
		for id := range c.secrets {
			secrets = append(secrets, id)
		}
		// Sorted, so that a seed's walk does not depend on map order.
		slices.SortFunc(reqs, func(a, b *gate.Request) int { return strings.Compare(a.ID, b.ID) })
		slices.SortFunc(props, func(a, b *gate.Proposal) int { return strings.Compare(a.ID, b.ID) })
		slices.Sort(secrets)
		return c.gate.Clone(), slices.Clone(c.st.Members), reqs, props, secrets
	}
	pick := func(keys []string) *conversation.Identity { return byKey[keys[rnd.IntN(len(keys))]] }
	for range steps {
		g, ms, reqs, props, secrets := snapshot()
		keys := make([]string, len(ms))
		for i, m := range ms {
			keys[i] = m.Key
		}
		who := pick(keys)
		switch op := rnd.IntN(100); {
		case op < 10:
			_ = post(who, convID, conversation.KindChatMessage, conversation.ChatPayload{Header: header(convID), Text: "hi"})
		case op < 35:
			svc, method, path, tmpl := "fun", "POST", "/leet", ""
			switch rnd.IntN(6) {
			case 0:
				method, path = "GET", "/x"
			case 1:
				path = fmt.Sprintf("/admin/%d", rnd.IntN(3))
			case 2:
				tmpl = "leet.translate"
			case 3:
				svc, method, path, tmpl = "httpbin", "GET", "/headers", "httpbin.headers"
			case 4:
				path = "/admin/1/" // the wider reading holds it to the /admin/{x} rule
			}
			exp := clk.Now().Add(time.Duration(5+rnd.IntN(30)) * time.Minute)
			reason := ""
			if policies && rnd.IntN(3) != 0 {
				reason = fmt.Sprint("because ", n)
			}
			_ = post(who, convID, conversation.KindGateRequest, gate.RequestPayload{Header: header(convID), RequestID: uid(seed, 1, n),
				Template: tmpl, Service: svc, Method: method, URL: up.URL + path, ExpiresAt: conversation.FormatTime(exp), Reason: reason})
		case op < 60 && len(reqs) > 0:
			r := reqs[rnd.IntN(len(reqs))]
			digest := r.Digest
			if rnd.IntN(10) == 0 {
				digest = conversation.Digest([]byte("another version"))
			}
			kind := conversation.KindGateApprove
			if rnd.IntN(4) == 0 || (r.State == gate.StateApproved && rnd.IntN(2) == 0) {
				kind = conversation.KindGateReject
			}
			reason := ""
			if policies && rnd.IntN(2) == 0 {
				reason = "vote " + fmt.Sprint(n)
			}
			_ = post(pick(r.Signers), convID, kind, gate.VotePayload{Header: header(convID), RequestID: r.ID, RequestDigest: digest, Reason: reason})
		case op < 65 && len(reqs) > 0:
			r := reqs[rnd.IntN(len(reqs))]
			by := who
			if rnd.IntN(2) == 0 && byKey[r.Submitter] != nil {
				by = byKey[r.Submitter]
			}
			_ = post(by, convID, conversation.KindGateCancel, gate.CancelPayload{Header: header(convID), RequestID: r.ID})
		case op < 72:
			p := gate.ProposePayload{Header: header(convID), ProposalID: uid(seed, 2, n)}
			switch rnd.IntN(3) {
			case 0:
				for _, q := range people {
					if !slices.Contains(keys, q.KeyID()) {
						p.Add = []conversation.Member{{Key: q.KeyID(), Name: q.Name}}
						break
					}
				}
			case 1:
				if k := keys[rnd.IntN(len(keys))]; k != admin.KeyID() {
					p.Remove = []string{k}
				}
			}
			if len(p.Add) == 0 && len(p.Remove) == 0 {
				p.RequiredApprovals = 1 + rnd.IntN(len(g.Signers))
				if policies && rnd.IntN(2) == 0 {
					p.RequiredApprovals = 0
					gs := randomGroups(rnd, g.Signers)
					p.Groups = &gs
					if rnd.IntN(2) == 0 {
						rs := randomPolicyRules(rnd, gs, g.Signers)
						p.Rules = &rs
					}
				}
			}
			_ = post(pick(g.Signers), convID, conversation.KindMemberPropose, p)
		case op < 85 && len(props) > 0:
			pr := props[rnd.IntN(len(props))]
			_ = post(pick(pr.Needed), convID, conversation.KindMemberApprove, gate.MemberApprovePayload{Header: header(convID), ProposalID: pr.ID, ProposalDigest: pr.Digest})
		case op < 90:
			sealed, err := box.SealAnonymous(nil, []byte(fmt.Sprint("key-", n)), &boxPub, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			_ = post(who, convID, conversation.KindGateSecret, gate.SecretPayload{Header: header(convID), SecretID: uid(seed, 3, n),
				Service: "httpbin", Sealed: base64.StdEncoding.EncodeToString(sealed)})
		case op < 93 && len(secrets) > 0:
			_ = post(who, convID, conversation.KindGateSecretRevoke, gate.RevokePayload{Header: header(convID), SecretID: secrets[rnd.IntN(len(secrets))]})
		default:
			clk.Advance(time.Duration(rnd.IntN(10)) * time.Minute)
		}
	}
	if policies {
		// Let every cool-off end: the timer executes what is still approved.
		clk.Advance(2 * time.Hour)
		for range 1000 {
			_, _, reqs, _, _ := snapshot()
			if !slices.ContainsFunc(reqs, func(r *gate.Request) bool { return r.State == gate.StateApproved }) {
				break
			}
			clk.Advance(time.Millisecond)
		}
	}
	// Let every approved call end and its outcome be written.
	e.Close()
	closed = true

	f := gate.NewFold(e.GatewayKey())
	f.Resolve = func(p *gate.RequestPayload) (gate.Target, string, error) {
		t := gate.Target{Service: p.Service, Method: p.Method}
		svc, ok := cfg.Catalog.Service(p.Service)
		if !ok {
			return t, "", fmt.Errorf("no service %s", p.Service)
		}
		path, err := svc.EndpointOf(p.URL)
		if err != nil {
			return t, "", err
		}
		t.Path = path
		if tm, ok := cfg.Catalog.Template(p.Template); ok && p.Template != "" {
			t.Pattern = tm.Endpoint
		}
		return t, "", nil
	}
	recs, err := e.ReadRecords(convID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		m, err := conversation.Verify(r.Envelope)
		if err != nil {
			t.Fatalf("record %d does not verify: %v", r.Seq, err)
		}
		at, err := conversation.ParseTime(r.ReceivedAt)
		if err != nil {
			t.Fatal(err)
		}
		before := f.Requests
		var prev *gate.Request
		var p struct {
			RequestID string `json:"request_id"`
			Reason    string `json:"reason"`
		}
		_ = json.Unmarshal(m.Payload, &p)
		if q := before[p.RequestID]; q != nil {
			prev = q.Clone()
		}
		step, err := f.Apply(m, r.Seq, at)
		if err != nil {
			t.Fatalf("record %d (%s): the engine wrote what the fold refuses: %v", r.Seq, r.Kind, err)
		}
		kinds[r.Kind]++
		if policies && step.Request != nil {
			checkDecision(t, r.Kind, p.Reason, prev, step.Request, kinds)
		}
	}
	if owed := f.Pending(); len(owed) > 0 {
		t.Fatalf("the log ends owing %v", owed)
	}
	t.Logf("%d records", len(recs))

	g, ms, _, props, secrets := snapshot()
	if !slices.Equal(f.Members, ms) {
		t.Errorf("members: fold %v, engine %v", f.Members, ms)
	}
	if f.Gate.Enabled != g.Enabled || !slices.Equal(f.Gate.Signers, g.Signers) || f.Gate.RequiredApprovals != g.RequiredApprovals || !gate.RulesEqual(f.Gate.Rules, g.Rules) || !gate.GroupsEqual(f.Gate.Groups, g.Groups) {
		t.Errorf("gate: fold %+v, engine %+v", f.Gate, g)
	}
	if len(f.Proposals) != len(props) {
		t.Errorf("open proposals: fold %d, engine %d", len(f.Proposals), len(props))
	}
	for _, p := range props {
		q := f.Proposals[p.ID]
		if q == nil || q.Digest != p.Digest || !slices.Equal(q.Approvals, p.Approvals) || !slices.Equal(q.Needed, p.Needed) {
			t.Errorf("proposal %s: fold %+v, engine %+v", p.ID, q, p)
		}
	}
	slices.Sort(secrets)
	var fs []string
	for id := range f.Secrets {
		fs = append(fs, id)
	}
	slices.Sort(fs)
	if !slices.Equal(fs, secrets) {
		t.Errorf("secrets: fold %v, engine %v", fs, secrets)
	}
	for id, fr := range f.Requests {
		er, err := e.findRequest(c, id)
		if err != nil {
			t.Fatalf("request %s: %v", id, err)
		}
		if fr.State != er.State || fr.Required != er.Required || fr.Endpoint != er.Endpoint || fr.Pattern != er.Pattern ||
			fr.Digest != er.Digest || fr.Submitter != er.Submitter || !slices.Equal(fr.Signers, er.Signers) ||
			!slices.Equal(fr.Approvals, er.Approvals) || !slices.Equal(fr.Rejections, er.Rejections) ||
			(fr.Rule == nil) != (er.Rule == nil) || (fr.Rule != nil && !fr.Rule.Equal(*er.Rule)) ||
			!reflect.DeepEqual(fr.Needs(), er.Needs()) || !fr.ExecutableAt.Equal(er.ExecutableAt) || !slices.Equal(fr.Vetoes, er.Vetoes) ||
			!maps.Equal(fr.Assignment, er.Assignment) || !slices.Equal(fr.Approvers, er.Approvers) || fr.Payload.Reason != er.Payload.Reason {
			t.Errorf("request %s:\n fold   %+v\n engine %+v", id, fr, er)
		}
		if fr.Terminal() && (fr.Result == nil || er.Result == nil || fr.Result.Reason != er.Result.Reason || fr.Result.Seq != er.Result.Seq ||
			fr.Result.Status != er.Result.Status) {
			t.Errorf("request %s outcome: fold %+v, engine %+v", id, fr.Result, er.Result)
		}
	}
}

// checkDecision holds one decision the log records (the record of kind,
// with reason, took the request from prev to r) to a brute-force search.
func checkDecision(t *testing.T, kind, reason string, prev, r *gate.Request, kinds map[string]int) {
	t.Helper()
	p := r.Needs()
	undecided := func(q *gate.Request) []string {
		var out []string
		for _, s := range q.Signers {
			if !slices.Contains(q.Approvals, s) && !slices.Contains(q.Rejections, s) {
				out = append(out, s)
			}
		}
		return out
	}
	switch {
	case kind == conversation.KindGateApproved || (kind == conversation.KindGateExecuted && r.ApprovedSeq == 0):
		if !bruteMeets(p, r.Groups, r.Approvers, r.Submitter) {
			t.Fatalf("request %s: %s with approvers %v, which do not meet %s", r.ID, kind, r.Approvers, p.Describe())
		}
		if kind == conversation.KindGateExecuted && len(r.Assignment) > 0 {
			kinds["assignment"]++
		}
	case r.State == gate.StatePending:
		if bruteMeets(p, r.Groups, r.Approvals, r.Submitter) {
			t.Fatalf("request %s is still pending, but its approvals %v meet %s", r.ID, r.Approvals, p.Describe())
		}
		if !bruteMeets(p, r.Groups, append(slices.Clone(r.Approvals), undecided(r)...), r.Submitter) {
			t.Fatalf("request %s is still pending, but its requirement (%s) is out of reach", r.ID, p.Describe())
		}
	case kind == conversation.KindGateRejected && reason == gate.ReasonRejected:
		if bruteMeets(p, r.Groups, append(slices.Clone(r.Approvals), undecided(r)...), r.Submitter) {
			t.Fatalf("request %s was rejected, but its requirement (%s) was still in reach", r.ID, p.Describe())
		}
		kinds["unreachable"]++
	case kind == conversation.KindGateRejected && reason == gate.ReasonVetoed:
		// The vote before it (prev is the request as that vote left it)
		// came during the cool-off and made the veto count.
		if prev == nil || r.ApprovedSeq == 0 || len(r.Vetoes) != p.Veto || len(prev.Vetoes) != p.Veto {
			t.Fatalf("request %s vetoed with %d vetoes of %d needed, approved at record %d", r.ID, len(r.Vetoes), p.Veto, r.ApprovedSeq)
		}
		kinds["vetoed"]++
	}
}

// uid is a lower-case UUID unique to (seed, what, n).
func uid(seed uint64, what, n int) string {
	return fmt.Sprintf("%08x-0000-4000-8%03x-%012x", seed, what, n)
}
