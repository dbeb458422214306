package main

import (
	"context"
	"errors"
	"io"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/twokey/twokey/agent"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/programs"
)

func newMCPCmd(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "mcp",
		Short: "Serve the MCP tools on stdio for a local AI agent, acting through a program key",
		Long: `Serve twokey's MCP server on standard input and output, for a local AI
agent (Claude Code, Codex, Cursor, any MCP client) that starts it as a
command. Its tools list and describe the templates the program key may
use, preview and propose calls, and wait for the signers' verdict; no tool
approves, rejects or reads a secret.

The key comes from TWOKEY_PROGRAM_KEY (never a flag: a flag shows in the
process list), the server from --server or TWOKEY_SERVER, its TLS trust
from --ca-cert / --pin (TWOKEY_CA_CERT, TWOKEY_PIN). Every tool call is a
call of the program API, /v1/programs/, so the key's conversation,
templates, rate and monthly cap apply as they do to any program.

'twokey snippet mcp' prints the configuration for Claude Code, Codex and
Cursor or VS Code. 'twokey serve' also serves the same tools over HTTP at
/v1/mcp.`,
		Example: "  TWOKEY_PROGRAM_KEY=tk_... TWOKEY_SERVER=http://127.0.0.1:8080 twokey mcp",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			key := f.getenv("TWOKEY_PROGRAM_KEY")
			if key == "" {
				return usagef("set TWOKEY_PROGRAM_KEY to the program key 'twokey keys create' printed (tk_...)")
			}
			if !programs.LooksLikeKey(key) {
				return usagef("TWOKEY_PROGRAM_KEY is not a program key: it starts with tk_ ('twokey keys create' prints one)")
			}
			o, err := f.clientOptions()
			if err != nil {
				return err
			}
			p, err := client.OpenProgram(f.serverURL(), key, o)
			if err != nil {
				return err
			}
			srv := agent.New(agent.Options{Version: engine.Version,
				Program: func(context.Context, *mcp.CallToolRequest) (*client.Program, error) { return p, nil }})
			err = srv.Run(cmd.Context(), &mcp.IOTransport{Reader: io.NopCloser(f.io.In), Writer: nopWriteCloser{f.rawOut}})
			if errors.Is(err, mcp.ErrConnectionClosed) || errors.Is(err, io.EOF) || cmd.Context().Err() != nil {
				return nil // the client went away, or we were stopped
			}
			return err
		},
	}
}

// nopWriteCloser is w, whose Close does nothing: standard output outlives
// the session.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
