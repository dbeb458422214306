package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/internal/termtext"
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
	io       Stdio     // Out and Err pass through termtext: others' text cannot drive the terminal
	rawOut   io.Writer // standard output as it is, for data (JSON, exports) and the TUI
	getenv   func(string) string
	server   string
	identity string
	ctx      context.Context
	caCert   string // --ca-cert: trust this CA (or self-signed) certificate for HTTPS
	pin      string // --pin: trust exactly the certificate with this sha256: fingerprint
	// --insecure-http: allow plain http:// to a host that is not loopback
	insecureHTTP bool
	warned       bool // the --insecure-http warning was printed
	noted        bool // the note on a server address without a scheme was printed
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

// serverURL is --server, TWOKEY_SERVER or the default. HOST:PORT without
// a scheme is read as client.ServerURL says (http:// to this machine,
// https:// elsewhere), and the scheme chosen is said once on stderr.
func (f *factory) serverURL() string {
	s, from := f.server, "--server"
	if s == "" {
		s, from = f.getenv("TWOKEY_SERVER"), "TWOKEY_SERVER"
	}
	if s == "" {
		return defaultServer
	}
	u, assumed := client.ServerURL(s)
	if assumed != "" && !f.noted {
		f.noted = true
		why := "plain http, as 'twokey serve' listens on this machine by default"
		if assumed == "https" {
			why = "another host is reached over https only"
		}
		fmt.Fprintf(f.io.Err, "twokey: note: %s %s has no scheme; using %s (%s; write the scheme to say which)\n", from, s, u, why)
	}
	return u
}

func (f *factory) loadIdentity() (*conversation.Identity, error) {
	return conversation.LoadIdentity(f.identityPath())
}

// client returns a client acting as the selected identity.
func (f *factory) client() (*client.Client, error) {
	o, err := f.clientOptions()
	if err != nil {
		return nil, err
	}
	c, err := client.Open(f.serverURL(), nil, o) // the URL is checked first
	if err != nil {
		return nil, err
	}
	if c.ID, err = f.loadIdentity(); err != nil {
		return nil, err
	}
	if c.Aliases, err = f.loadAliases(); err != nil {
		return nil, err
	}
	return c, nil
}

// anonClient returns a client with no identity (for public endpoints). A
// setting the client refuses fails its first call, before any dialing.
func (f *factory) anonClient() *client.Client {
	o, err := f.clientOptions()
	var c *client.Client
	if err == nil {
		c, err = client.Open(f.serverURL(), nil, o)
	}
	if err != nil {
		c = client.New(f.serverURL(), nil)
		c.HTTP.Transport = errTransport{err}
	}
	return c
}

// clientOptions are the flags --ca-cert, --pin and --insecure-http; the
// client package reads their variables (TWOKEY_CA_CERT, TWOKEY_PIN,
// TWOKEY_INSECURE_HTTP) and applies them (client/transport.go), the same
// for every command.
func (f *factory) clientOptions() (client.Options, error) {
	return client.Options{CACert: f.caCert, Pin: f.pin, InsecureHTTP: f.insecureHTTP, Warn: f.warnOnce}.WithEnv(f.getenv)
}

// warnOnce prints a warning of the client's on standard error, once per
// run however many clients a command makes.
func (f *factory) warnOnce(msg string) {
	if f.warned {
		return
	}
	f.warned = true
	fmt.Fprintf(f.io.Err, "twokey: %s\n", msg)
}

// errTransport fails every request with err (a setting the client refused).
type errTransport struct{ err error }

func (t errTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, t.err }

// usageError marks a mistake in the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Main runs the twokey command line and returns the exit status.
func Main(ctx context.Context, args []string, stdio Stdio, getenv func(string) string) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Records, names and bodies are written by other people: whatever a
	// command prints goes through termtext, so an escape sequence in a chat
	// message cannot recolour the screen or forge a line. Only the TUI,
	// which draws its own screen (and cleans what it shows), gets the raw
	// stream.
	f := &factory{io: Stdio{In: stdio.In, Out: termtext.NewWriter(stdio.Out), Err: termtext.NewWriter(stdio.Err)},
		rawOut: stdio.Out, getenv: getenv, ctx: ctx}
	stdio = f.io
	defer stdio.Out.(*termtext.Writer).Flush()
	defer stdio.Err.(*termtext.Writer).Flush()
	root := newRootCmd(f)
	root.SetArgs(args)
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	// The exit statuses are the table in cmdline.go (exitStatuses).
	var ue usageError
	var se *client.SettingError
	if errors.As(err, &se) {
		fmt.Fprintf(stdio.Err, "twokey: %v\nRun 'twokey --help' for usage.\n", err)
		return exitUsage
	}
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(stdio.Err, "twokey: %v\n", err)
		printUsageHint(stdio.Err, cmd)
		return exitUsage
	}
	var te *twokey.Error
	if errors.As(err, &te) {
		fmt.Fprintf(stdio.Err, "twokey: %s (%s)\n", twokey.ErrorMessage(err), te.Code)
		return twokey.ExitCode(te.Code)
	}
	fmt.Fprintf(stdio.Err, "twokey: %v\n", err)
	return exitRefused
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
TWOKEY_HOME (data and default identity; ~/.twokey), TWOKEY_PIN,
TWOKEY_CA_CERT, TWOKEY_INSECURE_HTTP.

An http:// server URL is refused with --pin or --ca-cert, and to a host
other than this machine unless --insecure-http; a server that redirects to
https:// is not followed: use its https:// URL.

` + exitStatusHelp(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&f.server, "server", "", "server URL (env TWOKEY_SERVER; default "+defaultServer+")")
	root.PersistentFlags().StringVar(&f.identity, "identity", "", "identity file to act as (env TWOKEY_IDENTITY; default $TWOKEY_HOME/identity.json)")
	root.PersistentFlags().StringVar(&f.caCert, "ca-cert", "", "trust this PEM certificate for an https:// server, e.g. <data>/ssl/cert.pem (env TWOKEY_CA_CERT)")
	root.PersistentFlags().StringVar(&f.pin, "pin", "", "trust exactly the https:// server whose certificate has this fingerprint, sha256:HEX as 'twokey serve' prints it (env TWOKEY_PIN)")
	root.PersistentFlags().BoolVar(&f.insecureHTTP, "insecure-http", false, "allow a plain http:// --server on another host: session tokens and the management key cross the network in clear text (env TWOKEY_INSECURE_HTTP=1)")
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
		newVoteCmd(f, "veto"),
		newCancelCmd(f),
		newMemberCmd(f),
		newKeysCmd(f),
		newWebhooksCmd(f),
		newStatusCmd(f),
		newMigrateCmd(f),
		newCallsCmd(f),
		newLogsCmd(f),
		newUsageCmd(f),
		newSnippetCmd(f),
		newMCPCmd(f),
		newConfigCmd(f),
		newAuditCmd(f),
		newFunServerCmd(f),
		newBenchCmd(f),
		newTUICmd(f),
	)
	explainArgs(root)
	return root
}
