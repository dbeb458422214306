package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/conversation"
)

// Aliases are a user's own names for conversations, so that two
// conversations with one name (a second 'conv create ops', or one made by
// someone else) can each be named. They are this machine's and this
// identity's only: kept in a file beside the identity file (identity.json
// → identity.aliases.json), mode 0600, never sent to the server.

// aliasFileVersion is the version of the alias file this twokey writes and
// reads.
const aliasFileVersion = 1

type aliasFile struct {
	Version int               `json:"version"`
	Aliases map[string]string `json:"aliases"` // alias -> conversation id
}

// aliasPath is the alias file beside the selected identity file.
func (f *factory) aliasPath() string {
	p := f.identityPath()
	return strings.TrimSuffix(p, filepath.Ext(p)) + ".aliases.json"
}

// loadAliases reads the alias file; none yet is no aliases.
func (f *factory) loadAliases() (map[string]string, error) {
	path := f.aliasPath()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	var a aliasFile
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("alias file %s is not valid: %v; fix or remove it (it only holds your names for conversations)", path, err)
	}
	if a.Version != aliasFileVersion {
		return nil, fmt.Errorf("alias file %s has version %d; this twokey reads version %d", path, a.Version, aliasFileVersion)
	}
	if a.Aliases == nil {
		a.Aliases = map[string]string{}
	}
	return a.Aliases, nil
}

// saveAliases writes the alias file with mode 0600, whole or not at all.
func (f *factory) saveAliases(aliases map[string]string) error {
	path := f.aliasPath()
	data, err := json.MarshalIndent(aliasFile{Version: aliasFileVersion, Aliases: aliases}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".aliases-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// checkAlias refuses an alias that could not be told from an id or that
// is not a name.
func checkAlias(alias string) error {
	if err := conversation.ValidateName("alias", alias, true); err != nil {
		return usagef("alias %q: %v", alias, err)
	}
	if len(alias) == 36 && strings.Count(alias, "-") == 4 {
		return usagef("alias %q looks like a conversation id; choose a name", alias)
	}
	return nil
}

func newConvAliasCmd(f *factory) *cobra.Command {
	var remove bool
	cmd := &cobra.Command{
		Use:   "alias [NAME ID] [--remove NAME]",
		Short: "Give a conversation a name of your own (on this machine), e.g. to tell two of one name apart",
		Long: `An alias is your own name for a conversation, kept on this machine beside
your identity file (identity.json → identity.aliases.json, mode 0600) and
never sent to the server. Every command that takes CONV reads it: an alias
comes before the conversations' names and id prefixes, so an alias that is
a shared name ("ops") picks which of them "ops" means. ID is the
conversation's id or a unique prefix of it ('twokey conv ls' lists them).
With no arguments, alias lists your aliases.`,
		Example: "  twokey conv alias ops-old 3f2a\n" +
			"  twokey conv alias\n" +
			"  twokey conv alias --remove ops-old",
		Args: cobra.ArbitraryArgs, // checked in RunE, in its own words
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case remove && len(args) != 1:
				return usagef("conv alias --remove takes the alias to remove, e.g. twokey conv alias --remove ops-old; got %s", gotArgs(len(args)))
			case !remove && len(args) != 0 && len(args) != 2:
				return usagef("conv alias takes NAME ID (or nothing, to list your aliases); got %s", gotArgs(len(args)))
			}
			aliases, err := f.loadAliases()
			if err != nil {
				return err
			}
			switch {
			case remove:
				if _, ok := aliases[args[0]]; !ok {
					return usagef("you have no alias %q ('twokey conv alias' lists them)", args[0])
				}
				delete(aliases, args[0])
				if err := f.saveAliases(aliases); err != nil {
					return err
				}
				fmt.Fprintf(f.io.Out, "removed alias %s\n", args[0])
				return nil
			case len(args) == 0:
				if len(aliases) == 0 {
					fmt.Fprintln(f.io.Out, "no aliases; give one with 'twokey conv alias NAME ID'")
					return nil
				}
				tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ALIAS\tID")
				for _, a := range slices.Sorted(maps.Keys(aliases)) {
					fmt.Fprintf(tw, "%s\t%s\n", a, aliases[a])
				}
				return tw.Flush()
			}
			alias, ref := args[0], args[1]
			if err := checkAlias(alias); err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			all, err := c.Conversations(cmd.Context())
			if err != nil {
				return err
			}
			var hits []string
			for _, s := range all {
				if strings.HasPrefix(s.ID, ref) && (len(ref) >= 4 || s.ID == ref) {
					hits = append(hits, s.ID)
				}
			}
			switch {
			case len(hits) == 0:
				return usagef("none of your conversations has an id starting with %q; 'twokey conv ls' lists them (give at least 4 characters)", ref)
			case len(hits) > 1:
				return usagef("%q is a prefix of %d conversation ids; give more of it", ref, len(hits))
			}
			aliases[alias] = hits[0]
			if err := f.saveAliases(aliases); err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "%s now names conversation %s (for you, on this machine: %s)\n", alias, hits[0], f.aliasPath())
			return nil
		},
	}
	cmd.Flags().BoolVar(&remove, "remove", false, "remove the alias NAME")
	return cmd
}

// aliasesOf returns the aliases that name id, sorted.
func aliasesOf(aliases map[string]string, id string) []string {
	var out []string
	for a, i := range aliases {
		if i == id {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// nOf is n and the noun, in the plural unless n is 1: "1 line",
// "2 lines".
func nOf(n int, word string) string { return fmt.Sprintf("%d %s", n, noun(n, word)) }

// noun is word, in the plural unless n is 1.
func noun(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// gotArgs says how many arguments a command line gave, for a usage error.
func gotArgs(n int) string {
	if n == 0 {
		return "none"
	}
	return nOf(n, "argument")
}
