package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
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
	c := client.New(f.serverURL(), id)
	tr, err := f.transport()
	if err != nil {
		return nil, err
	}
	if tr != nil {
		c.HTTP.Transport = tr
	}
	return c, nil
}

// anonClient returns a client with no identity (for public endpoints).
func (f *factory) anonClient() *client.Client {
	c := client.New(f.serverURL(), nil)
	if tr, err := f.transport(); err != nil {
		c.HTTP.Transport = errTransport{err}
	} else if tr != nil {
		c.HTTP.Transport = tr
	}
	return c
}

// transport returns the HTTP transport for --ca-cert and --pin (env
// TWOKEY_CA_CERT, TWOKEY_PIN), or nil for Go's default. With --ca-cert the
// server's certificate must chain to that file's certificates (a
// self-signed one may be its own CA); with --pin the leaf certificate's
// SHA-256 must equal the pin, checked on every connection, resumed ones
// included; with both, both hold.
func (f *factory) transport() (*http.Transport, error) {
	ca, pin := f.caCert, f.pin
	if ca == "" {
		ca = f.getenv("TWOKEY_CA_CERT")
	}
	if pin == "" {
		pin = f.getenv("TWOKEY_PIN")
	}
	if ca == "" && pin == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pemBytes, err := os.ReadFile(ca)
		if err != nil {
			return nil, usagef("--ca-cert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, usagef("--ca-cert %s holds no PEM certificate", ca)
		}
		cfg.RootCAs = pool
	}
	if pin != "" {
		want, err := parsePin(pin)
		if err != nil {
			return nil, err
		}
		// The pin replaces the CA check unless --ca-cert asks for both.
		cfg.InsecureSkipVerify = ca == ""
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return fmt.Errorf("the server's certificate sha256:%x does not match --pin; it may not be your server", got)
			}
			return nil
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return tr, nil
}

// parsePin reads sha256:HEX (colons between bytes allowed, as openssl
// prints them).
func parsePin(s string) ([]byte, error) {
	h, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	if !ok {
		h, ok = strings.CutPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256/")
	}
	b, err := hex.DecodeString(strings.ReplaceAll(h, ":", ""))
	if !ok || err != nil || len(b) != sha256.Size {
		return nil, usagef("--pin %q: give sha256: and the 64 hex digits 'twokey serve' printed", s)
	}
	return b, nil
}

// errTransport fails every request with err (a bad --ca-cert or --pin).
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
	root.PersistentFlags().StringVar(&f.caCert, "ca-cert", "", "trust this PEM certificate for an https:// server, e.g. <data>/ssl/cert.pem (env TWOKEY_CA_CERT)")
	root.PersistentFlags().StringVar(&f.pin, "pin", "", "trust exactly the https:// server whose certificate has this fingerprint, sha256:HEX as 'twokey serve' prints it (env TWOKEY_PIN)")
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
		newKeysCmd(f),
		newLogsCmd(f),
		newUsageCmd(f),
		newSnippetCmd(f),
		newConfigCmd(f),
		newAuditCmd(f),
		newFunServerCmd(f),
		newBenchCmd(f),
		newTUICmd(f),
	)
	return root
}
