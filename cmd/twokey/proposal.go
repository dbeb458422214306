package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/term"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/termtext"
)

// Proposals as the CLI shows them: what each changes, before → after
// (gate.DiffProposal, drawn by its Lines, as the TUI and 'twokey log' draw
// it), in gate show, member ls, member approve, and what gate rule add,
// gate rule rm and member propose say they proposed. An open proposal was
// made in the gate as it is now (a change that applies closes the others),
// so the gate the server answers is the one to diff it against.

// gateConfig is the gate g describes.
func gateConfig(g *api.GateInfo) gate.Config {
	return gate.Config{Enabled: g.Enabled, Signers: g.Signers, RequiredApprovals: g.RequiredApprovals, Rules: g.Rules, Groups: g.Groups}
}

// printDiff writes d a line each, after indent.
func printDiff(w io.Writer, g *api.GateInfo, d gate.ProposalDiff, indent string) {
	for _, l := range d.Lines(func(k string) string { return nameOf(g, k) }) {
		fmt.Fprintf(w, "%s%s\n", indent, termtext.Line(l))
	}
}

// waitingFor names the signers p still needs.
func waitingFor(g *api.GateInfo, p *gate.Proposal) []string {
	var out []string
	for _, k := range p.Missing() {
		out = append(out, nameOf(g, k))
	}
	return out
}

// printProposals writes g's open proposals, each with what it changes and
// the command that approves it.
func printProposals(f *factory, conv api.Summary, g *api.GateInfo) {
	for _, p := range g.Proposals {
		d := gate.DiffProposal(gateConfig(g), p.Payload)
		line := fmt.Sprintf("open proposal %s by %s, to change %s: %d of %d approvals", p.ID, nameOf(g, p.Proposer), d.What(), len(p.Approvals), len(p.Needed))
		if w := waitingFor(g, p); len(w) > 0 {
			line += ", waiting for " + strings.Join(w, ", ")
		}
		fmt.Fprintln(f.io.Out, termtext.Line(line))
		printDiff(f.io.Out, g, d, "  ")
		fmt.Fprintf(f.io.Out, "  approve: twokey member approve %s %s\n", conv.Name, shortID(p.ID))
	}
}

// reportProposal says what the proposal whose record body is body
// changes in before, the gate it was made in, and whom it waits for.
func reportProposal(ctx context.Context, f *factory, c *client.Client, conv api.Summary, before *api.GateInfo, body []byte) error {
	var p gate.ProposePayload
	_ = jsonUnmarshal(body, &p)
	d := gate.DiffProposal(gateConfig(before), p)
	fmt.Fprintf(f.io.Out, "proposed %s to change %s:\n", p.ProposalID, d.What())
	printDiff(f.io.Out, before, d, "  ")
	g, err := c.Gate(ctx, conv.ID)
	if err != nil {
		return err
	}
	for _, open := range g.Proposals {
		if open.ID == p.ProposalID {
			fmt.Fprintf(f.io.Out, "waiting for %s to run: twokey member approve %s %s\n", strings.Join(waitingFor(g, open), ", "), conv.Name, shortID(p.ProposalID))
			return nil
		}
	}
	fmt.Fprintf(f.io.Out, "applied (%s): %d of %d signers must approve, %s\n", strings.ToLower(d.Label()), g.RequiredApprovals, len(g.Signers), nOf(len(g.Rules), "rule"))
	return nil
}

type approveProposalOptions struct {
	conv, id string
	yes      bool // approve without asking
}

// runApproveProposal shows what the proposal changes, as its proposer
// signed it (read from the log and verified), asks on a terminal, and
// approves. Without --yes and with no terminal to ask on, it approves
// nothing: nobody has confirmed the change.
func runApproveProposal(ctx context.Context, f *factory, o *approveProposalOptions) error {
	c, conv, g, err := f.gateOf(ctx, o.conv)
	if err != nil {
		return err
	}
	var prop *gate.Proposal
	for _, p := range g.Proposals {
		if p.ID == o.id || (len(o.id) >= 4 && strings.HasPrefix(p.ID, o.id)) {
			if prop != nil {
				return usagef("%q names more than one open proposal of %s; give more of its id ('twokey gate show %s' lists them)", o.id, conv.Name, conv.Name)
			}
			prop = p
		}
	}
	if prop == nil {
		return twokey.Errorf(twokey.EUnknownRequest, "no open proposal %q in %s ('twokey gate show %s' lists them)", twokey.Clip(o.id), conv.Name, conv.Name)
	}
	m, err := c.VerifiedRecord(ctx, conv.ID, prop.Seq, conversation.KindMemberPropose)
	if err != nil {
		return err
	}
	var signed gate.ProposePayload
	if err := jsonUnmarshal(m.Payload, &signed); err != nil || signed.ProposalID != prop.ID || m.Author != prop.Proposer {
		return fmt.Errorf("record %d is not proposal %s by %s as the server says: not approving", prop.Seq, prop.ID, nameOf(g, prop.Proposer))
	}
	// Say no before asking when the approval cannot count.
	if err := prop.CheckApprove(c.ID.KeyID(), m.PayloadDigest()); err != nil {
		return err
	}
	d := gate.DiffProposal(gateConfig(g), signed)
	fmt.Fprintf(f.io.Out, "proposal %s by %s, to change %s:\n", prop.ID, nameOf(g, prop.Proposer), d.What())
	printDiff(f.io.Out, g, d, "  ")
	var had []string
	for _, k := range prop.Approvals {
		had = append(had, nameOf(g, k))
	}
	fmt.Fprintf(f.io.Out, "approvals %d of %d (%s); yours makes %d\n", len(prop.Approvals), len(prop.Needed), strings.Join(had, ", "), len(prop.Approvals)+1)
	if !o.yes {
		in, ok := f.io.In.(*os.File)
		if !ok || !term.IsTerminal(int(in.Fd())) {
			return usagef("standard input is not a terminal, so no one can confirm the change above: nothing was approved (to approve it as shown, add --yes)")
		}
		fmt.Fprint(f.io.Err, "approve? [y/N] ")
		answer, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && answer == "" {
			fmt.Fprintln(f.io.Err)
		}
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return fmt.Errorf("not approved: nothing was signed")
		}
	}
	rec, err := c.ApproveProposal(ctx, conv.ID, prop.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(f.io.Out, "approved proposal %s (record #%d)\n", shortID(prop.ID), rec.Seq)
	after, err := c.Gate(ctx, conv.ID)
	if err != nil {
		return err
	}
	if i := slices.IndexFunc(after.Proposals, func(p *gate.Proposal) bool { return p.ID == prop.ID }); i >= 0 {
		fmt.Fprintf(f.io.Out, "waiting for %s\n", strings.Join(waitingFor(after, after.Proposals[i]), ", "))
	} else {
		fmt.Fprintf(f.io.Out, "applied (%s)\n", strings.ToLower(d.Label()))
	}
	fmt.Fprintf(f.io.Out, "signers now: %d, default M %d, %s\n", len(after.Signers), after.RequiredApprovals, nOf(len(after.Proposals), "open proposal"))
	return nil
}
