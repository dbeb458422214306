package main

import (
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// snippetTools are the tools `twokey snippet` knows, with the service each
// points at unless --service says otherwise.
var snippetTools = map[string]string{
	"curl": "httpbin", "python": "httpbin", "node": "httpbin", "codex": "openai", "claude-code": "anthropic",
}

// mcpSnippets are the snippets of the MCP server ('twokey mcp' and
// /v1/mcp), for each MCP client; "mcp" prints them all.
var mcpSnippets = []string{"mcp", "claude-code-mcp", "codex-mcp", "cursor-mcp"}

type snippetOptions struct {
	keyName, conversation, service string
}

func newSnippetCmd(f *factory) *cobra.Command {
	o := &snippetOptions{}
	var mkey string
	cmd := &cobra.Command{
		Use:   "snippet curl|python|node|codex|claude-code --key-name N | snippet mcp|claude-code-mcp|codex-mcp|cursor-mcp",
		Short: "Print how to point a tool at the gateway's proxy, or an AI agent at its MCP server, with a program key",
		Long: `Print what a tool needs to call an API through twokey's proxy mode with a
program key: the base URL /v1/proxy/CONVERSATION/SERVICE and the key as a
bearer token. Each call becomes a request the conversation's signers must
approve; the proxy answers with the upstream's response once they have
(waiting up to Prefer: wait=N seconds), or 202 with the request's Location.

The mcp snippets configure an MCP client (Claude Code, Codex, Cursor or
VS Code) to use twokey's MCP tools, each two ways: 'twokey mcp' on stdio,
which the client starts, and Streamable HTTP at /v1/mcp on the server. The
agent can then list templates, preview and propose calls and wait for the
signers' verdict; it cannot approve. They need neither --key-name nor
--conversation (the key is bound to its conversation).

The key itself is never printed (the server does not have it): the
snippets read it from TWOKEY_PROGRAM_KEY, or leave a tk_... placeholder to
fill in. With TWOKEY_MANAGEMENT_KEY set the key's conversation is looked
up; otherwise give --conversation.`,
		Example: "  twokey snippet curl --key-name ci\n" +
			"  twokey snippet claude-code --key-name claude-code --conversation ops\n" +
			"  twokey snippet mcp\n" +
			"  twokey snippet claude-code-mcp",
		Args:      cobra.ExactArgs(1),
		ValidArgs: append([]string{"curl", "python", "node", "codex", "claude-code"}, mcpSnippets...),
		RunE: func(cmd *cobra.Command, args []string) error {
			tool := args[0]
			if slices.Contains(mcpSnippets, tool) {
				writeMCPSnippet(f.io.Out, tool, o.keyName, strings.TrimSuffix(f.serverURL(), "/"))
				return nil
			}
			def, ok := snippetTools[tool]
			if !ok {
				return usagef("no snippet for %q; choose curl, python, node, codex or claude-code, or for MCP clients mcp, claude-code-mcp, codex-mcp or cursor-mcp", tool)
			}
			if o.keyName == "" {
				return usagef("--key-name is required (twokey keys ls lists them)")
			}
			conv := o.conversation
			if mk := orDefault(mkey, f.getenv("TWOKEY_MANAGEMENT_KEY")); mk != "" {
				m, err := f.mgmt(mk)
				if err != nil {
					return err
				}
				k, err := m.Key(cmd.Context(), o.keyName)
				if err != nil {
					return err
				}
				if conv == "" {
					conv = orDefault(k.ConversationName, k.Conversation)
				}
			}
			if conv == "" {
				return usagef("give --conversation (or set TWOKEY_MANAGEMENT_KEY so that the key's conversation is looked up)")
			}
			svc := orDefault(o.service, def)
			base := strings.TrimSuffix(f.serverURL(), "/")
			proxy := base + "/v1/proxy/" + url.PathEscape(conv) + "/" + url.PathEscape(svc)
			note := ""
			if cat, err := f.anonClient().Catalog(cmd.Context()); err == nil {
				names := []string{}
				for _, s := range cat.Services {
					names = append(names, s.Name)
				}
				if !slices.Contains(names, svc) {
					note = missingServiceNote(svc, conv)
				}
			}
			writeSnippet(f.io.Out, tool, o.keyName, base, proxy, svc)
			if note != "" {
				fmt.Fprint(f.io.Out, "\n"+note)
			}
			return nil
		},
	}
	addMgmtFlag(cmd, &mkey)
	cmd.Flags().StringVar(&o.keyName, "key-name", "", "the program key's name (required but for the mcp snippets)")
	cmd.Flags().StringVar(&o.conversation, "conversation", "", "the key's conversation (looked up when TWOKEY_MANAGEMENT_KEY is set)")
	cmd.Flags().StringVar(&o.service, "service", "", "the catalog service to call (default: httpbin; openai for codex; anthropic for claude-code)")
	return cmd
}

// aiCatalog is the example operator catalog that defines the services the
// codex and claude-code snippets use (the starter catalog does not).
const aiCatalog = "docs/examples/ai-catalog.yaml"

// missingServiceNote says how to give a server the service a snippet needs.
func missingServiceNote(svc, conv string) string {
	if svc == "openai" || svc == "anthropic" {
		return fmt.Sprintf("note: this server has no service %q yet. The twokey repository ships it in %s:\n"+
			"  restart the server with it:  twokey serve --catalog %s   (or catalogs: [FILE] in twokey.yaml, or TWOKEY_CATALOGS=FILE)\n"+
			"  then seal the API key:       twokey secret add %s --service %s\n", svc, aiCatalog, aiCatalog, conv, svc)
	}
	return fmt.Sprintf("note: this server has no service %q yet; define it (base_url, header_name, header_template) in a catalog file, restart with twokey serve --catalog FILE, and seal its key with 'twokey secret add %s --service %s'.\n", svc, conv, svc)
}

func writeSnippet(w io.Writer, tool, name, base, proxy, svc string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# Program key %q, service %s, through %s\n", name, svc, base)
	p("# Set the key 'twokey keys create --name %s' printed (it is shown only once):\n", name)
	p("export TWOKEY_PROGRAM_KEY=tk_...\n\n")
	switch tool {
	case "curl":
		p("# The call waits (Prefer: wait, at most 300 s) for the signers' approval,\n")
		p("# then answers with the upstream's status, headers and body:\n")
		p("curl -sS -i -H \"Authorization: Bearer $TWOKEY_PROGRAM_KEY\" -H 'Prefer: wait=60' \\\n  %s/get\n\n", proxy)
		p("# Not approved in time: 202 with Location: /v1/programs/requests/ID. Poll it:\n")
		p("curl -sS -H \"Authorization: Bearer $TWOKEY_PROGRAM_KEY\" '%s/v1/programs/requests/ID?wait=60s'\n\n", base)
		p("# Or submit a template call and wait on it:\n")
		p("curl -sS -H \"Authorization: Bearer $TWOKEY_PROGRAM_KEY\" -H 'Content-Type: application/json' \\\n")
		p("  -d '{\"template\": \"httpbin.headers\"}' %s/v1/programs/requests\n", base)
	case "python":
		p("import os, requests\n\n")
		p("BASE = %q\n", base)
		p("PROXY = %q\n", proxy)
		p("s = requests.Session()\n")
		p("s.headers.update({\"Authorization\": f\"Bearer {os.environ['TWOKEY_PROGRAM_KEY']}\", \"Prefer\": \"wait=60\"})\n\n")
		p("r = s.get(PROXY + \"/get\", timeout=90)\n")
		p("if r.status_code == 202:  # not approved within the wait: poll the request\n")
		p("    state = s.get(BASE + r.headers[\"Location\"], params={\"wait\": \"60s\"}, timeout=90).json()\n")
		p("    print(state[\"state\"], state.get(\"response\", {}).get(\"body\"))\n")
		p("else:\n")
		p("    print(r.status_code, r.text)\n")
	case "node":
		p("// Node 18+ (global fetch); save as call.mjs\n")
		p("const base = %q;\n", base)
		p("const proxy = %q;\n", proxy)
		p("const headers = { Authorization: `Bearer ${process.env.TWOKEY_PROGRAM_KEY}`, Prefer: \"wait=60\" };\n\n")
		p("let res = await fetch(`${proxy}/get`, { headers });\n")
		p("if (res.status === 202) { // not approved within the wait: poll the request\n")
		p("  const state = await (await fetch(`${base}${res.headers.get(\"location\")}?wait=60s`, { headers })).json();\n")
		p("  console.log(state.state, state.response?.body);\n")
		p("} else {\n")
		p("  console.log(res.status, await res.text());\n")
		p("}\n")
	case "codex":
		p("# ~/.codex/config.toml: a provider whose base URL is the proxy\n")
		p("model_provider = \"twokey\"\n\n")
		p("[model_providers.twokey]\n")
		p("name = \"OpenAI through twokey\"\n")
		p("base_url = \"%s/v1\"\n", proxy)
		p("env_key = \"TWOKEY_PROGRAM_KEY\"\n")
		p("wire_api = \"chat\"\n\n")
		p("# Or for the OpenAI SDKs:\n")
		p("#   export OPENAI_BASE_URL=%s/v1\n", proxy)
		p("#   export OPENAI_API_KEY=$TWOKEY_PROGRAM_KEY\n")
		p("\n# The proxy does not stream: a streamed answer (stream: true) arrives whole,\n")
		p("# after the call, cut at 64 KiB. Prefer clients and settings that do not stream.\n")
	case "claude-code":
		p("# Claude Code (and the Anthropic SDKs) with the proxy as their base URL:\n")
		p("export ANTHROPIC_BASE_URL=%s\n", proxy)
		p("export ANTHROPIC_AUTH_TOKEN=$TWOKEY_PROGRAM_KEY\n")
		p("claude\n")
		p("\n# The proxy does not stream: a streamed answer (stream: true) arrives whole,\n")
		p("# after the call, cut at 64 KiB. Prefer clients and settings that do not stream.\n")
	}
	p("\n# Every call needs the signers' approval: raise proxy.default_wait (the wait\n")
	p("# when a client sends no Prefer header) and the tool's own timeout to match.\n")
	p("# The proxy forwards JSON bodies, answers once the call is done (no streaming),\n")
	p("# and returns at most 64 KiB of the response body, with the service's key redacted.\n")
}

// writeMCPSnippet prints tool's MCP client configuration ("mcp": every
// client's) for the server at base, stdio and HTTP. The key is never in
// it: an environment variable reference or a placeholder.
func writeMCPSnippet(w io.Writer, tool, name, base string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	endpoint := base + "/v1/mcp"
	key := "program key"
	if name != "" {
		key = fmt.Sprintf("program key %q", name)
	}
	p("# twokey's MCP tools for an AI agent, through a %s and %s.\n", key, base)
	p("# The agent lists templates, previews and proposes calls and waits for the\n")
	p("# verdict; the conversation's signers approve (it cannot). Set the key\n")
	p("# 'twokey keys create' printed (it is shown only once):\n")
	p("export TWOKEY_PROGRAM_KEY=tk_...\n")
	p("# stdio: the client starts 'twokey mcp' (twokey on its PATH), which calls %s.\n", base)
	p("# HTTP: the client calls %s itself (use an https:// URL off this machine).\n", endpoint)
	if strings.HasPrefix(base, "https://") {
		p("# A server with its own certificate: add TWOKEY_PIN=sha256:... (or\n")
		p("# TWOKEY_CA_CERT=FILE), as 'twokey serve' printed it, to the stdio env.\n")
	}
	all := tool == "mcp"
	if all || tool == "claude-code-mcp" {
		p("\n## Claude Code\n\n")
		p("# stdio (the shell puts the key into Claude Code's configuration):\n")
		p("claude mcp add twokey --env TWOKEY_SERVER=%s --env TWOKEY_PROGRAM_KEY=\"$TWOKEY_PROGRAM_KEY\" -- twokey mcp\n\n", base)
		p("# HTTP:\n")
		p("claude mcp add --transport http twokey %s --header \"Authorization: Bearer $TWOKEY_PROGRAM_KEY\"\n\n", endpoint)
		p("# Or in the project's .mcp.json, which reads the key from the environment\n")
		p("# when Claude Code starts (one of the two entries):\n")
		p("{\n  \"mcpServers\": {\n")
		p("    \"twokey\": {\"command\": \"twokey\", \"args\": [\"mcp\"],\n")
		p("               \"env\": {\"TWOKEY_SERVER\": %q, \"TWOKEY_PROGRAM_KEY\": \"${TWOKEY_PROGRAM_KEY}\"}},\n", base)
		p("    \"twokey-http\": {\"type\": \"http\", \"url\": %q,\n", endpoint)
		p("                    \"headers\": {\"Authorization\": \"Bearer ${TWOKEY_PROGRAM_KEY}\"}}\n")
		p("  }\n}\n")
	}
	if all || tool == "codex-mcp" {
		p("\n## Codex (~/.codex/config.toml)\n\n")
		p("# stdio: fill in the key (keep the file private), or run\n")
		p("#   codex mcp add twokey --env TWOKEY_SERVER=%s --env TWOKEY_PROGRAM_KEY=\"$TWOKEY_PROGRAM_KEY\" -- twokey mcp\n", base)
		p("[mcp_servers.twokey]\n")
		p("command = \"twokey\"\n")
		p("args = [\"mcp\"]\n")
		p("env = { TWOKEY_SERVER = %q, TWOKEY_PROGRAM_KEY = \"tk_...\" }\n\n", base)
		p("# HTTP: Codex sends $TWOKEY_PROGRAM_KEY as the bearer token:\n")
		p("[mcp_servers.twokey-http]\n")
		p("url = %q\n", endpoint)
		p("bearer_token_env_var = \"TWOKEY_PROGRAM_KEY\"\n")
	}
	if all || tool == "cursor-mcp" {
		p("\n## Cursor (.cursor/mcp.json or ~/.cursor/mcp.json; one of the two entries)\n\n")
		p("{\n  \"mcpServers\": {\n")
		p("    \"twokey\": {\"command\": \"twokey\", \"args\": [\"mcp\"],\n")
		p("               \"env\": {\"TWOKEY_SERVER\": %q, \"TWOKEY_PROGRAM_KEY\": \"${env:TWOKEY_PROGRAM_KEY}\"}},\n", base)
		p("    \"twokey-http\": {\"url\": %q,\n", endpoint)
		p("                    \"headers\": {\"Authorization\": \"Bearer ${env:TWOKEY_PROGRAM_KEY}\"}}\n")
		p("  }\n}\n")
		p("\n## VS Code (.vscode/mcp.json; it asks for the key once and keeps it)\n\n")
		p("{\n  \"inputs\": [{\"type\": \"promptString\", \"id\": \"twokey-key\", \"description\": \"twokey program key (tk_...)\", \"password\": true}],\n")
		p("  \"servers\": {\n")
		p("    \"twokey\": {\"type\": \"stdio\", \"command\": \"twokey\", \"args\": [\"mcp\"],\n")
		p("               \"env\": {\"TWOKEY_SERVER\": %q, \"TWOKEY_PROGRAM_KEY\": \"${input:twokey-key}\"}},\n", base)
		p("    \"twokey-http\": {\"type\": \"http\", \"url\": %q,\n", endpoint)
		p("                    \"headers\": {\"Authorization\": \"Bearer ${input:twokey-key}\"}}\n")
		p("  }\n}\n")
	}
	p("\n# A call waits for people: get_request waits at most 300 s per call and sends\n")
	p("# progress meanwhile; raise the client's tool timeout if it cuts calls sooner.\n")
}
