// Package agent is the MCP server: tools an AI agent uses to propose calls
// through a program key.
//
// Its tools list and describe the templates the key may use, preview and
// propose calls, and read (and wait on) the program's requests. Each tool
// call is one or more calls of the program API (client.Program, over
// /v1/programs/), so it acts exactly as the program key may: in its
// conversation, within its template list, rate and monthly cap, checked by
// the server's own handlers on every call. No tool approves, rejects,
// cancels or reads a secret; every proposal waits for the conversation's
// signers.
//
// 'twokey mcp' serves it on stdio with a client of TWOKEY_SERVER; the
// server serves it at /v1/mcp (Streamable HTTP) with a client that runs
// each call through its own handler in process, with the key the MCP
// request carried.
package agent

import (
	"context"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/twokey/twokey/client"
)

// ProgramFunc returns the program client a tool call acts through: one
// fixed client on stdio, one with the call's own bearer key over HTTP.
type ProgramFunc func(ctx context.Context, req *mcp.CallToolRequest) (*client.Program, error)

// Options are what the MCP server is made with.
type Options struct {
	Program ProgramFunc
	// Version is the version the server gives in its implementation info.
	Version string
	// Poll is the long poll of one wait step of get_request (default and
	// at most 2 s): the approvals count is checked, and progress sent, at
	// least that often.
	Poll time.Duration
}

// Tool names, in the order they are added.
const (
	ToolListTemplates    = "list_templates"
	ToolDescribeTemplate = "describe_template"
	ToolPreviewRequest   = "preview_request"
	ToolProposeRequest   = "propose_request"
	ToolGetRequest       = "get_request"
	ToolListRequests     = "list_requests"
)

// Tools are the names of every tool the server has.
var Tools = []string{ToolListTemplates, ToolDescribeTemplate, ToolPreviewRequest, ToolProposeRequest, ToolGetRequest, ToolListRequests}

// instructions are what the server tells a client about itself.
const instructions = `twokey lets you propose HTTP calls that a group of people (the conversation's signers) must approve before the gateway makes them.
You act through a program key: you may list and describe the templates it allows, preview a call, propose it, and wait for the outcome. You cannot approve, reject or cancel a request, nor see any API key: the signers decide.
Typical flow: list_templates, describe_template, preview_request (shows the exact URL, how many approvals it needs and its policy), propose_request, then get_request with wait_seconds until it is executed (its response is in the result), rejected or expired. Tell the user the request id and link so that the signers can find it.
A template's policy may ask more than a number of approvals: approvers from named groups, a reason (then pass reason to propose_request: why the call is needed, for the signers), or a cool-off after the approvals (state approved) during which signers may still veto the call.`

// New returns the MCP server with every tool, acting through o.Program.
func New(o Options) *mcp.Server {
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Poll <= 0 || o.Poll > maxPoll {
		o.Poll = maxPoll
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "twokey", Title: "twokey: group-approved API calls", Version: o.Version},
		&mcp.ServerOptions{Instructions: instructions, Capabilities: &mcp.ServerCapabilities{}})
	t := &tools{o: o}
	t.add(s)
	return s
}
