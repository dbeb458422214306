package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
)

// Exit statuses: every command ends with one of these, and Main is the one
// place that chooses (twokey.ExitCode maps a protocol code to 1 or 3).
const (
	exitOK          = 0
	exitRefused     = 1
	exitUsage       = 2
	exitUnreachable = 3
)

// exitStatuses is the table 'twokey --help' prints and docs/operations.md
// repeats (TestExitStatusTableIsDocumented holds them to each other).
var exitStatuses = []struct {
	code  int
	means string
}{
	{exitOK, "done"},
	{exitRefused, "refused or failed: the server said no (not a member, already voted, request closed, ...), a check failed (audit verify, a log that does not verify), or something on this machine failed (an identity file that does not open)"},
	{exitUsage, "usage: the command line is wrong (an argument, a flag, an unknown template, a template parameter missing or of the wrong type); nothing was changed"},
	{exitUnreachable, "unreachable: the server could not be reached, is shutting down, or failed with an internal error"},
}

// exitStatusHelp is the table as 'twokey --help' shows it.
func exitStatusHelp() string {
	var b strings.Builder
	b.WriteString("Exit status:")
	for _, s := range exitStatuses {
		fmt.Fprintf(&b, "\n  %d  %s", s.code, s.means)
	}
	return b.String()
}

// explainArgs makes every command's argument errors say what the command
// takes, in its own words, instead of cobra's "accepts 2 arg(s)", and
// marks them and flag errors as usage (exit 2). Main then prints the
// command's usage line and first example under the message.
func explainArgs(root *cobra.Command) {
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		var bad *pflag.InvalidValueError
		if errors.As(err, &bad) {
			return usagef("%s: --%s %q is not %s", commandName(c), bad.GetFlag().Name, twokey.Clip(bad.GetValue()), typeWords(bad.GetFlag().Value.Type()))
		}
		return usagef("%s: %v", commandName(c), err)
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Args != nil {
			check := c.Args
			c.Args = func(cmd *cobra.Command, args []string) error {
				err := check(cmd, args)
				var ue usageError
				if err == nil || errors.As(err, &ue) { // a command's own words stay
					return err
				}
				return usageError{argsMessage(cmd, args)}
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

// commandName is cmd's path below the root: "gate rule add".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// typeWords says what a flag of this pflag type takes.
func typeWords(t string) string {
	switch t {
	case "int", "int64", "uint", "uint64":
		return "a whole number"
	case "float64":
		return "a number"
	case "duration":
		return "a duration (30s, 15m, 2h)"
	case "bool":
		return "true or false"
	}
	return "a valid " + t
}

// argsMessage says what cmd takes and how many arguments it was given:
// "approve takes CONV ID; got 1 argument". It does not repeat them: an
// extra one may be a key typed where it does not belong ('secret add ops
// sk_live_...').
func argsMessage(cmd *cobra.Command, args []string) string {
	want := argWords(cmd.Use)
	if want == "" {
		want = "no arguments"
	}
	got := "none"
	switch len(args) {
	case 0:
	case 1:
		got = "1 argument"
	default:
		got = fmt.Sprintf("%d arguments", len(args))
	}
	return fmt.Sprintf("%s takes %s; got %s", commandName(cmd), want, got)
}

// argWords is the positional part of a Use line: "approve CONV ID" gives
// "CONV ID", "request CONV TEMPLATE [k=v ...]" gives "CONV TEMPLATE
// [k=v ...]", and flags ("--name NAME", "[--service S]") end it.
func argWords(use string) string {
	fields := strings.Fields(use)
	var out []string
	for _, w := range fields[min(1, len(fields)):] {
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[-") || w == "|" {
			break
		}
		out = append(out, w)
	}
	return strings.Join(out, " ")
}

// printUsageHint writes, under a usage error, the usage line of the
// command the error is about and its first example, or for the root the
// pointer to --help.
func printUsageHint(w io.Writer, cmd *cobra.Command) {
	if cmd == nil || !cmd.HasParent() {
		fmt.Fprintln(w, "Run 'twokey --help' for usage.")
		return
	}
	fmt.Fprintf(w, "usage:   %s %s\n", cmd.Parent().CommandPath(), cmd.Use)
	if ex := firstExample(cmd); ex != "" {
		fmt.Fprintf(w, "example: %s\n", ex)
	}
	fmt.Fprintf(w, "Run '%s --help' for more.\n", cmd.CommandPath())
}

// firstExample is the first line of cmd's Example that runs twokey
// (else its first line), trimmed.
func firstExample(cmd *cobra.Command) string {
	first := ""
	for _, l := range strings.Split(cmd.Example, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "twokey ") {
			return l
		}
		if first == "" {
			first = l
		}
	}
	return first
}

// unknownTemplate is the usage error for a template name the catalog
// does not have, with the nearest names it does.
func unknownTemplate(cat *api.Catalog, name string) error {
	if near := nearest(name, templateNames(cat)); len(near) > 0 {
		return usagef("no template %q; did you mean %s? ('twokey templates' lists them all)", name, orList(near))
	}
	return usagef("no template %q; 'twokey templates' lists them", name)
}

// nearest returns up to three of names close to s, closest first: those
// s is a prefix of (or that are a prefix of s), those whose last part
// after a '.' is s, and those within a few edits (about one in four
// characters, at least two).
func nearest(s string, names []string) []string {
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	limit := max(2, len(s)/4)
	for _, n := range names {
		d := editDistance(s, n)
		switch {
		case n == s:
			continue
		case s != "" && (strings.HasPrefix(n, s) || strings.HasPrefix(s, n)):
			d = min(d, 1)
		case strings.Contains(n, ".") && n[strings.LastIndex(n, ".")+1:] == s:
			d = min(d, 1)
		case d > limit:
			continue
		}
		cs = append(cs, cand{n, d})
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].d != cs[j].d {
			return cs[i].d < cs[j].d
		}
		return cs[i].name < cs[j].name
	})
	var out []string
	for _, c := range cs[:min(3, len(cs))] {
		out = append(out, c.name)
	}
	return out
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// orList writes "a", "a or b", "a, b or c".
func orList(xs []string) string {
	if len(xs) <= 1 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}
