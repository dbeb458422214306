package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/audit"
)

type auditExportOptions struct {
	out string
}

type auditVerifyOptions struct {
	gateway     string
	checkpoints []string
	anchors     []string
	live        bool
}

func newAuditCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Export a conversation and re-check it offline",
		Long: `An audit re-checks a conversation from its records alone: every envelope's
signature, the hash chain from the first record, the gateway's signed
checkpoint, and every decision the gateway made: each executed request had M
distinct valid approvals under the rule and the membership of its time,
nothing executed twice, membership changed only with every signer it needed,
and no record claims to be the gateway's without the gateway's signature.

'twokey audit export' writes a file that 'twokey audit verify' checks with no
server at all; 'twokey audit verify CONV' fetches and checks in one go.`,
	}
	cmd.AddCommand(newAuditExportCmd(f, nil), newAuditVerifyCmd(f, nil))
	return cmd
}

func newAuditExportCmd(f *factory, runF func(*auditExportOptions, string) error) *cobra.Command {
	o := &auditExportOptions{}
	cmd := &cobra.Command{
		Use:   "export CONV [-o FILE]",
		Short: "Write a conversation's records, checkpoint and catalog facts as one JSON file",
		Long: `Write everything an offline audit needs: every record, the gateway's signing
key, a checkpoint of the log signed by the gateway, and the catalog facts a
request's M depends on (its service's base URL and its template's endpoint
pattern). Nothing secret is in it: the log never holds a key.`,
		Example: "  twokey audit export ops > ops-audit.json\n  twokey audit verify ops-audit.json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o, args[0])
			}
			return runAuditExport(cmd.Context(), f, o, args[0])
		},
	}
	cmd.Flags().StringVarP(&o.out, "output", "o", "", "write to FILE instead of standard output")
	return cmd
}

func runAuditExport(ctx context.Context, f *factory, o *auditExportOptions, ref string) error {
	c, conv, err := f.conversation(ctx, ref)
	if err != nil {
		return err
	}
	x, err := audit.Fetch(ctx, c, conv.ID)
	if err != nil {
		return err
	}
	data, err := x.Marshal()
	if err != nil {
		return err
	}
	if o.out == "" {
		// The export is data, byte for byte: the raw stream, never the
		// cleaning one (which would change bodies the signatures cover).
		_, err = f.rawOut.Write(data)
	} else {
		err = os.WriteFile(o.out, data, 0o644)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(f.io.Err, "exported %s of %s (checkpoint at seq %d, gateway %s)\n", nOf(len(x.Records), "record"), conv.Name, x.Checkpoint.Seq, x.Gateway)
	return nil
}

func newAuditVerifyCmd(f *factory, runF func(*auditVerifyOptions, string) error) *cobra.Command {
	o := &auditVerifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify FILE|CONV",
		Short: "Re-check an export offline, or a conversation live",
		Long: `Verify an export file with no server (FILE), or fetch a conversation and
verify it (CONV, or --live). Exit 0 with a summary when everything holds;
otherwise name the first record that fails, which check it fails and why,
and exit 1.

--gateway pins the gateway's signing key (from 'curl SERVER/v1/gateway' or an
earlier export): an export of another gateway then fails. --checkpoint adds
a checkpoint you kept (a file saved from GET /v1/conversations/ID/checkpoint,
or an earlier export), and --anchor a chain value you noted (SEQ=sha256:...):
the log must still agree with each, so a server that rewrote history since
is caught.`,
		Example: "  twokey audit verify ops-audit.json --gateway Fa1Oci...\n" +
			"  twokey audit verify ops --checkpoint last-week.json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o, args[0])
			}
			return runAuditVerify(cmd.Context(), f, o, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.gateway, "gateway", "", "the gateway's signing key id the export must name")
	fl.StringArrayVar(&o.checkpoints, "checkpoint", nil, "a checkpoint or earlier export FILE the log must still match (repeatable)")
	fl.StringArrayVar(&o.anchors, "anchor", nil, "a chain value SEQ=sha256:HEX the log must still match (repeatable)")
	fl.BoolVar(&o.live, "live", false, "treat the argument as a conversation even if a file has its name")
	return cmd
}

// errAuditFailed wraps the first failure (exit 1).
var errAuditFailed = errors.New("audit failed")

func runAuditVerify(ctx context.Context, f *factory, o *auditVerifyOptions, arg string) error {
	opt := audit.Options{Gateway: o.gateway}
	for _, a := range o.anchors {
		an, err := audit.ParseAnchor(a)
		if err != nil {
			return usagef("--anchor %v", err)
		}
		opt.Anchors = append(opt.Anchors, an)
	}
	for _, file := range o.checkpoints {
		cp, err := readCheckpoint(file)
		if err != nil {
			return err
		}
		opt.Checkpoints = append(opt.Checkpoints, *cp)
	}
	var x *audit.Export
	if st, err := os.Stat(arg); err == nil && st.Mode().IsRegular() && !o.live {
		data, err := os.ReadFile(arg)
		if err != nil {
			return err
		}
		if x, err = audit.Parse(data); err != nil {
			return fmt.Errorf("%w: %s: %v", errAuditFailed, arg, err)
		}
		fmt.Fprintf(f.io.Out, "verifying %s offline\n", arg)
	} else {
		c, conv, err := f.conversation(ctx, arg)
		if err != nil {
			return err
		}
		if x, err = audit.Fetch(ctx, c, conv.ID); err != nil {
			return err
		}
		fmt.Fprintf(f.io.Out, "verifying %s live from %s\n", conv.Name, c.Base)
	}
	rep, err := audit.Verify(x, opt)
	if err != nil {
		return fmt.Errorf("%w: %v", errAuditFailed, err)
	}
	fmt.Fprint(f.io.Out, rep.Summary())
	if o.gateway == "" {
		fmt.Fprintf(f.io.Out, "(the gateway key was not pinned: compare %s with the server's, or pass --gateway)\n", x.Gateway)
	}
	return nil
}

// readCheckpoint reads a kept checkpoint: the JSON of GET .../checkpoint,
// or an export, whose checkpoint is taken.
func readCheckpoint(file string) (*audit.Checkpoint, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	cp, err := audit.ParseCheckpoint(data)
	if err != nil {
		return nil, usagef("--checkpoint %s %v", file, err)
	}
	return cp, nil
}
