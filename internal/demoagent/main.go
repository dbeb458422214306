// Command demoagent is make demo's stand-in for an AI agent: an MCP client
// (the SDK's own) that starts 'twokey mcp' on stdio, as Claude Code or
// Codex would, lists the tools, proposes a call and waits for the humans'
// verdict, printing each step and the progress notifications it gets.
//
//	demoagent -twokey bin/twokey -template httpbin.headers -id-file F
//
// The program key and the server come from TWOKEY_PROGRAM_KEY and
// TWOKEY_SERVER, as for 'twokey mcp'. The proposed request's id is
// written to -id-file, so the demo can have the signers approve it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	tk := flag.String("twokey", "twokey", "the twokey binary")
	template := flag.String("template", "httpbin.headers", "the template to propose")
	idFile := flag.String("id-file", "", "write the proposed request's id here")
	wait := flag.Int("wait", 60, "seconds to wait for the verdict")
	flag.Parse()
	if err := run(*tk, *template, *idFile, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "demoagent:", err)
		os.Exit(1)
	}
}

func run(tk, template, idFile string, wait int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(wait+30)*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "demoagent", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			fmt.Printf("agent: progress: %s\n", r.Params.Message)
		},
	})
	s, err := c.Connect(ctx, &mcp.CommandTransport{Command: exec.Command(tk, "mcp")}, nil)
	if err != nil {
		return fmt.Errorf("start twokey mcp: %w", err)
	}
	defer s.Close()
	tools, err := s.ListTools(ctx, nil)
	if err != nil {
		return err
	}
	var names []string
	for _, t := range tools.Tools {
		names = append(names, t.Name)
	}
	fmt.Printf("agent: twokey mcp offers %s (none approves)\n", strings.Join(names, ", "))

	var prop struct {
		RequestID         string `json:"request_id"`
		State             string `json:"state"`
		Approvals         int    `json:"approvals"`
		RequiredApprovals int    `json:"required_approvals"`
		Link              string `json:"link"`
		Message           string `json:"message"`
	}
	if err := call(ctx, s, &mcp.CallToolParams{Name: "propose_request", Arguments: map[string]any{"template": template}}, &prop); err != nil {
		return err
	}
	fmt.Printf("agent: proposed %s: %s, %d of %d approvals\n", template, prop.State, prop.Approvals, prop.RequiredApprovals)
	if prop.Link != "" {
		fmt.Printf("agent: the signers approve it at %s\n", prop.Link)
	}
	if idFile != "" {
		if err := os.WriteFile(idFile, []byte(prop.RequestID+"\n"), 0o600); err != nil {
			return err
		}
	}

	var got struct {
		State    string `json:"state"`
		Reason   string `json:"reason"`
		Response *struct {
			Status     int `json:"status"`
			Redactions int `json:"redactions"`
		} `json:"response"`
		Message string `json:"message"`
	}
	p := &mcp.CallToolParams{Name: "get_request", Arguments: map[string]any{"request_id": prop.RequestID, "wait_seconds": wait}}
	p.SetProgressToken("demo")
	fmt.Printf("agent: waiting (get_request, wait_seconds %d) ...\n", wait)
	if err := call(ctx, s, p, &got); err != nil {
		return err
	}
	switch {
	case got.Response != nil:
		copies := "copies"
		if got.Response.Redactions == 1 {
			copies = "copy"
		}
		fmt.Printf("agent: %s: upstream answered %d (%d %s of the key redacted before the agent saw it)\n", got.State, got.Response.Status, got.Response.Redactions, copies)
	case got.Reason != "":
		fmt.Printf("agent: %s: %s\n", got.State, got.Reason)
	default:
		fmt.Printf("agent: %s\n", got.State)
	}
	if got.State != "executed" {
		return fmt.Errorf("the request ended %s, not executed: %s", got.State, got.Message)
	}
	return nil
}

// call calls a tool and decodes its structured result into out; a tool
// error is an error.
func call(ctx context.Context, s *mcp.ClientSession, p *mcp.CallToolParams, out any) error {
	res, err := s.CallTool(ctx, p)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	if res.IsError {
		var text []string
		for _, c := range res.Content {
			if t, ok := c.(*mcp.TextContent); ok {
				text = append(text, t.Text)
			}
		}
		return fmt.Errorf("%s refused: %s", p.Name, strings.Join(text, " "))
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
