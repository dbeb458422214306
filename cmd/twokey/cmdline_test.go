package main

import (
	"fmt"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/gate"
)

// commands walks the whole command tree of a fresh root.
func commands(t *testing.T) []*cobra.Command {
	t.Helper()
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		out = append(out, c)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRootCmd(&factory{getenv: func(string) string { return "" }}))
	return out
}

// TestEveryCommandHasAnExample: the README promises --help with examples
// for every command, so every command that runs has one.
func TestEveryCommandHasAnExample(t *testing.T) {
	n := 0
	for _, c := range commands(t) {
		if !c.Runnable() || c.Hidden {
			continue
		}
		n++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no Example: its --help shows no example", c.CommandPath())
		}
	}
	if n < 40 {
		t.Fatalf("walked only %d runnable commands", n)
	}
}

// TestExamplesRunAgainstTheStarterCatalog parses every example line with
// the flag set of the command it runs and checks that each service and
// template it names is one of the embedded starter catalog's, so that an
// example pasted on a fresh server does what it says.
func TestExamplesRunAgainstTheStarterCatalog(t *testing.T) {
	cat, err := catalog.Starter()
	if err != nil {
		t.Fatal(err)
	}
	service := func(where, name string, keyed bool) {
		t.Helper()
		if name == "*" {
			return
		}
		s, ok := cat.Service(name)
		if !ok {
			t.Errorf("%s: service %q is not in the starter catalog", where, name)
			return
		}
		if keyed && s.Auth == "none" {
			t.Errorf("%s: service %q takes no key (auth: none)", where, name)
		}
	}
	template := func(where, name string) {
		t.Helper()
		if _, ok := cat.Template(name); !ok {
			t.Errorf("%s: template %q is not in the starter catalog", where, name)
		}
	}
	checked := 0
	for _, owner := range commands(t) {
		for _, line := range strings.Split(owner.Example, "\n") {
			for _, argv := range exampleCommands(line) {
				where := fmt.Sprintf("%s example %q", owner.CommandPath(), strings.TrimSpace(line))
				root := newRootCmd(&factory{getenv: func(string) string { return "" }})
				cmd, rest, err := root.Find(argv)
				if err != nil || cmd == root {
					t.Errorf("%s: runs no command (%v)", where, err)
					continue
				}
				if err := cmd.ParseFlags(rest); err != nil {
					t.Errorf("%s: %s's flags refuse it: %v", where, cmd.CommandPath(), err)
					continue
				}
				args := cmd.Flags().Args()
				if err := cmd.ValidateArgs(args); err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				checked++
				path := cmd.CommandPath()
				if fl := cmd.Flags().Lookup("service"); fl != nil && fl.Changed {
					if a, ok := fl.Value.(interface{ GetSlice() []string }); ok { // serve: NAME=URL
						for _, o := range a.GetSlice() {
							name, _, _ := strings.Cut(o, "=")
							service(where, name, false)
						}
					} else {
						service(where, fl.Value.String(), path == "twokey secret add")
					}
				}
				var specs []string
				if fl := cmd.Flags().Lookup("rule"); fl != nil && fl.Changed {
					specs = fl.Value.(interface{ GetSlice() []string }).GetSlice()
				}
				switch path {
				case "twokey request":
					template(where, args[1])
				case "twokey templates show":
					template(where, args[0])
				case "twokey gate rule add":
					specs = append(specs, args[1:]...)
				case "twokey keys create":
					if fl := cmd.Flags().Lookup("templates"); fl.Changed {
						for _, g := range strings.Split(fl.Value.String(), ",") {
							if !matchesAny(g, cat) {
								t.Errorf("%s: --templates %q matches no starter template", where, g)
							}
						}
					}
				}
				for _, spec := range specs {
					r, err := gate.ParseRule(spec)
					if err != nil {
						t.Errorf("%s: %v", where, err)
						continue
					}
					service(where, r.Service, false)
				}
			}
		}
	}
	if checked < 60 {
		t.Fatalf("checked only %d example lines", checked)
	}
}

func matchesAny(glob string, cat *catalog.Catalog) bool {
	for _, tm := range cat.Templates() {
		if ok, _ := path.Match(glob, tm.Name); ok {
			return true
		}
	}
	return false
}

// exampleCommands reads one example line as a shell would, enough for our
// examples: quotes, $(...), pipes, '>' redirections, '#' comments and
// VAR=value prefixes. It returns the arguments of each twokey it runs.
func exampleCommands(line string) [][]string {
	var out [][]string
	var seg []string
	var word strings.Builder
	inWord, skipNext := false, false
	endWord := func() {
		if inWord {
			if skipNext {
				skipNext = false
			} else {
				seg = append(seg, word.String())
			}
		}
		word.Reset()
		inWord = false
	}
	endSeg := func() {
		endWord()
		i := 0
		for i < len(seg) && strings.Contains(seg[i], "=") && strings.ToUpper(seg[i][:strings.Index(seg[i], "=")]) == seg[i][:strings.Index(seg[i], "=")] {
			i++ // VAR=value before the command
		}
		if i < len(seg) && seg[i] == "twokey" {
			out = append(out, seg[i+1:])
		}
		seg = nil
	}
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			word.WriteString(line[i+1 : i+1+j])
			inWord, i = true, i+1+j
		case ch == '"':
			j := strings.IndexByte(line[i+1:], '"')
			word.WriteString(line[i+1 : i+1+j])
			inWord, i = true, i+1+j
		case ch == '$' && i+1 < len(line) && line[i+1] == '(':
			depth, j := 0, i+1
			for ; j < len(line); j++ {
				if line[j] == '(' {
					depth++
				} else if line[j] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			out = append(out, exampleCommands(line[i+2:j])...)
			word.WriteString("VALUE")
			inWord, i = true, j
		case ch == ' ' || ch == '\t':
			endWord()
		case ch == '|':
			endSeg()
		case ch == '>':
			endWord()
			skipNext = true
		case ch == '#' && !inWord:
			endSeg()
			return out
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	endSeg()
	return out
}

func TestExampleCommands(t *testing.T) {
	for _, c := range []struct {
		line string
		want string
	}{
		{`  twokey approve ops 3f2a`, `[[approve ops 3f2a]]`},
		{`  printf %s "$KEY" | twokey secret add ops --service httpbin --ttl 720h`, `[[secret add ops --service httpbin --ttl 720h]]`},
		{`  KEY=$(twokey keys create --name ci --conversation ops --key-only)`, `[[keys create --name ci --conversation ops --key-only]]`},
		{`  twokey conv create ops --member bob=$(twokey --identity bob.json id key) --member carol=KEY`, `[[--identity bob.json id key] [conv create ops --member bob=VALUE --member carol=KEY]]`},
		{`  twokey audit export ops > ops-audit.json`, `[[audit export ops]]`},
		{`  twokey keys rotate ci   # a key that leaked: twokey x`, `[[keys rotate ci]]`},
		{`  TWOKEY_MANAGEMENT_KEY=... twokey serve --tls-mode generate`, `[[serve --tls-mode generate]]`},
		{`  twokey secret add ops --template '{value}'`, `[[secret add ops --template {value}]]`},
		{`  make bench                        # this`, `[]`},
	} {
		if got := fmt.Sprint(exampleCommands(c.line)); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.line, got, c.want)
		}
	}
}

// TestUsageErrorsShowUsageAndExample: a wrong command line says what the
// command takes, in its words, then its usage line and an example, and
// exits 2.
func TestUsageErrorsShowUsageAndExample(t *testing.T) {
	env := map[string]string{"TWOKEY_HOME": t.TempDir(), "TWOKEY_SERVER": "http://127.0.0.1:1"}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"approve", "ops"}, []string{
			"twokey: approve takes CONV ID; got 1 argument\n",
			"usage:   twokey approve CONV ID\n",
			"example: twokey approve ops 3f2a\n",
			"Run 'twokey approve --help' for more.\n"}},
		{[]string{"member", "approve", "ops"}, []string{
			"twokey: member approve takes CONV PROPOSAL_ID; got 1 argument\n",
			"example: twokey member approve ops 9c1e\n"}},
		{[]string{"conv", "ls", "extra"}, []string{
			"twokey: conv ls takes no arguments; got 1 argument\n",
			"usage:   twokey conv ls\n"}},
		{[]string{"gate", "enable", "ops", "--approvals", "two"}, []string{
			`twokey: gate enable: --approvals "two" is not a whole number` + "\n",
			"usage:   twokey gate enable CONV --approvals M [--group NAME=MEMBER,MEMBER ...] [--rule SPEC ...]\n",
			"example: twokey gate enable ops --approvals 2\n"}},
		{[]string{"request", "ops", "httpbin.headers", "--expires", "3"}, []string{
			`twokey: request: --expires "3" is not a duration (30s, 15m, 2h)` + "\n"}},
		{[]string{"gate", "rule", "add", "ops", "service=httpbin,approvals=two"}, []string{
			`twokey: rule "service=httpbin,approvals=two": approvals must be a number; give the rule as service=S,endpoint=/path,method=M,approvals=N (an omitted field is *) or as --service S --endpoint /path --method M --approvals N` + "\n"}},
		{[]string{"gate", "rule", "add", "ops", "service=httpbin,approvals=2", "--approvals", "3"}, []string{
			"twokey: give the rule as SPEC (service=httpbin,approvals=2) or with --service, --endpoint, --method and --approvals, not both\n"}},
		{[]string{"nosuch"}, []string{"unknown command \"nosuch\" for \"twokey\"", "Run 'twokey --help' for usage.\n"}},
	} {
		code, out, errs := run(t, env, c.args...)
		if code != exitUsage || out != "" {
			t.Errorf("twokey %s: exit %d, stdout %q", strings.Join(c.args, " "), code, out)
		}
		for _, w := range c.want {
			if !strings.Contains(errs, w) {
				t.Errorf("twokey %s: stderr lacks %q:\n%s", strings.Join(c.args, " "), w, errs)
			}
		}
	}
}

func TestNearest(t *testing.T) {
	names := []string{"ascii.artify", "dogs.breed", "dogs.random", "hn.get-item", "hn.top-stories", "httpbin.echo", "httpbin.headers", "jokes.dad", "leet.translate", "trivia.random"}
	for _, c := range []struct{ in, want string }{
		{"httpbin.header", "[httpbin.headers]"},
		{"httpbin.heders", "[httpbin.headers]"},
		{"headers", "[httpbin.headers]"},
		{"dogs", "[dogs.breed dogs.random]"},
		{"dogs.bread", "[dogs.breed]"},
		{"hn.get-itm", "[hn.get-item]"},
		{"weather.now", "[]"},
		{"", "[]"},
	} {
		if got := fmt.Sprint(nearest(c.in, names)); got != c.want {
			t.Errorf("nearest(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// TestExitStatus holds every kind of failure to the one table: a wrong
// argument is 2 whether the CLI or the server's preview finds it, a
// server's refusal 1, a server out of reach 3.
func TestExitStatus(t *testing.T) {
	f := newOperatorFixture(t)
	down := map[string]string{"TWOKEY_SERVER": "http://127.0.0.1:1", "TWOKEY_HOME": f.env["TWOKEY_HOME"]}
	for _, c := range []struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		{f.env, []string{"request", "ops", "httpbin.header"}, exitUsage, `no template "httpbin.header"; did you mean httpbin.headers? ('twokey templates' lists them all)`},
		{f.env, []string{"templates", "show", "httpbin.header"}, exitUsage, `did you mean httpbin.headers?`},
		{f.env, []string{"request", "ops", "dogs.breed"}, exitUsage, `missing required parameter "breed"`},
		{f.env, []string{"request", "ops", "dogs.breed", "breed=hound", "size=big", "--preview"}, exitUsage, `unknown parameter "size": the template takes breed`},
		{f.env, []string{"approve", "ops"}, exitUsage, "approve takes CONV ID"},
		{f.env, []string{"say", "nosuch", "hello"}, exitRefused, "nosuch"},
		{f.env, []string{"approve", "ops", "00000000"}, exitRefused, ""},
		{down, []string{"conv", "ls"}, exitUnreachable, "cannot reach the twokey server at http://127.0.0.1:1"},
		{down, []string{"request", "ops", "httpbin.headers"}, exitUnreachable, "cannot reach"},
	} {
		code, _, errs := run(t, c.env, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("twokey %s: exit %d, want %d with %q:\n%s", strings.Join(c.args, " "), code, c.code, c.want, errs)
		}
	}
	// Every protocol code is a refusal (1) or the server's failure (3).
	for _, code := range []string{twokey.EBadEnvelope, twokey.EBadPayload, twokey.EBadSignature, twokey.EHostMismatch, twokey.EUnauthorized,
		twokey.ENotMember, twokey.ENotSigner, twokey.ENotAdmin, twokey.EForbidden, twokey.EGateDisabled, twokey.EGateEnabled,
		twokey.EUnknownConversation, twokey.EUnknownRequest, twokey.EDuplicateRequest, twokey.EAlreadyVoted, twokey.EDigestMismatch,
		twokey.ERequestClosed, twokey.ERequestExpired, twokey.ETooLarge, twokey.ERateLimited, twokey.EReplayed, twokey.ENotFound} {
		if got := twokey.ExitCode(code); got != exitRefused {
			t.Errorf("%s exits %d, want %d", code, got, exitRefused)
		}
	}
	for _, code := range []string{twokey.EUnavailable, twokey.EInternal} {
		if got := twokey.ExitCode(code); got != exitUnreachable {
			t.Errorf("%s exits %d, want %d", code, got, exitUnreachable)
		}
	}
}

// TestExitStatusTableIsDocumented: 'twokey --help' prints the table and
// docs/operations.md repeats it, row for row.
func TestExitStatusTableIsDocumented(t *testing.T) {
	_, help, _ := run(t, map[string]string{}, "--help")
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(help, "Exit status:") {
		t.Errorf("twokey --help has no exit status table:\n%s", help)
	}
	for _, s := range exitStatuses {
		if line := fmt.Sprintf("  %d  %s\n", s.code, s.means); !strings.Contains(help, line) {
			t.Errorf("twokey --help lacks %q", line)
		}
		if row := fmt.Sprintf("| %d | %s |\n", s.code, s.means); !strings.Contains(string(doc), row) {
			t.Errorf("docs/operations.md lacks the row %q", row)
		}
	}
}
