package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
)

// Stdio is the command's standard streams.
type Stdio struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// factory carries what every command needs: streams, environment and the
// global flags, and builds identities and clients from them.
type factory struct {
	io       Stdio
	getenv   func(string) string
	server   string
	identity string
	ctx      context.Context
}

const defaultServer = "http://127.0.0.1:8080"

// home is the twokey directory: TWOKEY_HOME or ~/.twokey.
func (f *factory) home() string {
	if h := f.getenv("TWOKEY_HOME"); h != "" {
		return h
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".twokey")
	}
	return ".twokey"
}

func (f *factory) identityPath() string {
	if f.identity != "" {
		return f.identity
	}
	if p := f.getenv("TWOKEY_IDENTITY"); p != "" {
		return p
	}
	return filepath.Join(f.home(), "identity.json")
}

func (f *factory) serverURL() string {
	if f.server != "" {
		return f.server
	}
	if s := f.getenv("TWOKEY_SERVER"); s != "" {
		return s
	}
	return defaultServer
}

func (f *factory) loadIdentity() (*conversation.Identity, error) {
	return conversation.LoadIdentity(f.identityPath())
}

// client returns a client acting as the selected identity.
func (f *factory) client() (*client.Client, error) {
	id, err := f.loadIdentity()
	if err != nil {
		return nil, err
	}
	return client.New(f.serverURL(), id), nil
}

// anonClient returns a client with no identity (for public endpoints).
func (f *factory) anonClient() *client.Client {
	return client.New(f.serverURL(), nil)
}

// usageError marks a mistake in the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Main runs the twokey command line and returns the exit status.
func Main(ctx context.Context, args []string, stdio Stdio, getenv func(string) string) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	f := &factory{io: stdio, getenv: getenv, ctx: ctx}
	root := newRootCmd(f)
	root.SetArgs(args)
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(stdio.Err, "twokey: %v\nRun 'twokey --help' for usage.\n", err)
		return 2
	}
	var te *twokey.Error
	if errors.As(err, &te) {
		fmt.Fprintf(stdio.Err, "twokey: %s (%s)\n", twokey.ErrorMessage(err), te.Code)
		return twokey.ExitCode(te.Code)
	}
	fmt.Fprintf(stdio.Err, "twokey: %v\n", err)
	return 1
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func newRootCmd(f *factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "twokey",
		Short: "Make API calls together: nothing runs until enough signers approve",
		Long: `twokey is a gateway for group-approved API calls. A conversation's members
are signers with Ed25519 keys; one proposes an HTTP call from a template, and
once M distinct signers approve it the gateway injects the service's API key
from its encrypted vault, makes the call exactly once and posts the result
back into the conversation, where everyone sees it.

Start a server with 'twokey serve', make an identity with 'twokey id new',
and see 'make demo' in the README for the whole flow.

Environment: TWOKEY_SERVER (server URL), TWOKEY_IDENTITY (identity file),
TWOKEY_HOME (data and default identity; ~/.twokey).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&f.server, "server", "", "server URL (env TWOKEY_SERVER; default "+defaultServer+")")
	root.PersistentFlags().StringVar(&f.identity, "identity", "", "identity file to act as (env TWOKEY_IDENTITY; default $TWOKEY_HOME/identity.json)")
	root.AddCommand(
		newServeCmd(f),
		newIDCmd(f),
		newConvCmd(f),
		newSayCmd(f),
		newLogCmd(f),
		newGateCmd(f),
		newSecretCmd(f),
		newTemplatesCmd(f),
		newRequestCmd(f),
		newRequestsCmd(f),
		newVoteCmd(f, "approve"),
		newVoteCmd(f, "reject"),
		newCancelCmd(f),
		newMemberCmd(f),
		newFunServerCmd(f),
	)
	return root
}
