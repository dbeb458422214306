package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
)

func newConvCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "conv",
		Short: "Create and list conversations",
		Long: `A conversation is a group chat held by the server: its members, and an
append-only, hash-chained log of signed messages. Its creator is its admin.
Name a conversation by its id, a unique prefix of the id, its name, or an
alias of yours ('twokey conv alias'). Two of your conversations with one
name are refused at 'conv create' unless --allow-duplicate-name; an alias
tells them apart.`,
	}
	var members []string
	var allowDup bool
	create := &cobra.Command{
		Use:     "create NAME [--member NAME=KEY ...]",
		Short:   "Create a conversation; you become its admin",
		Example: "  twokey conv create ops --member bob=$(twokey --identity bob.json id key) --member carol=KEY",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ms, err := parseMembers(members)
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			if !allowDup {
				if err := checkNewName(cmd.Context(), c, args[0]); err != nil {
					return err
				}
			}
			rec, err := c.CreateConversation(cmd.Context(), args[0], ms)
			if err != nil {
				return err
			}
			var p conversation.CreatePayload
			_ = jsonUnmarshal(rec.Body, &p)
			fmt.Fprintf(f.io.Out, "created conversation %s (%s) with %s\n", args[0], p.Conversation, nOf(len(p.Members), "member"))
			return nil
		},
	}
	create.Flags().StringArrayVar(&members, "member", nil, "a member as NAME=KEY (repeatable)")
	create.Flags().BoolVar(&allowDup, "allow-duplicate-name", false, "create it even if a conversation of yours has this name (then tell them apart with 'twokey conv alias')")
	ls := &cobra.Command{
		Use:     "ls",
		Short:   "List your conversations",
		Example: "  twokey conv ls\n  twokey --identity bob.json conv ls",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			all, err := c.Conversations(cmd.Context())
			if err != nil {
				return err
			}
			if len(all) == 0 {
				fmt.Fprintln(f.io.Out, "no conversations yet; create one with 'twokey conv create NAME'")
				return nil
			}
			tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
			// Your aliases, in a last column when you have any.
			head, aliasCol := "", func(string) string { return "" }
			if len(c.Aliases) > 0 {
				head = "\tALIAS"
				aliasCol = func(id string) string { return "\t" + orDefault(strings.Join(aliasesOf(c.Aliases, id), ", "), "-") }
			}
			fmt.Fprintln(tw, "NAME\tID\tMEMBERS\tRECORDS\tGATE\tPENDING"+head)
			for _, s := range all {
				gate := "off"
				if s.GateEnabled {
					gate = "on"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d%s\n", s.Name, s.ID, len(s.Members), s.Seq, gate, s.Pending, aliasCol(s.ID))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(create, ls, newConvAliasCmd(f))
	return cmd
}

// checkNewName refuses a name that one of the caller's conversations (or
// aliases) already has: a second "ops" would make "ops" ambiguous in every
// command that takes CONV.
func checkNewName(ctx context.Context, c *client.Client, name string) error {
	if id, ok := c.Aliases[name]; ok {
		return twokey.Errorf(twokey.EBadPayload, "%q is already your alias for conversation %s; choose another name, or give --allow-duplicate-name (then %q still means that one)", name, id, name)
	}
	all, err := c.Conversations(ctx)
	if err != nil {
		return err
	}
	var same []api.Summary
	for _, s := range all {
		if s.Name == name {
			same = append(same, s)
		}
	}
	if len(same) == 0 {
		return nil
	}
	return twokey.Errorf(twokey.EBadPayload, "you already have a conversation named %q (%s, created %s): with a second, %q would name neither in the commands that take CONV. Choose another name, or give --allow-duplicate-name and then tell them apart with 'twokey conv alias NAME ID'", name, same[0].ID, same[0].CreatedAt, name)
}

// parseMembers reads NAME=KEY flags.
func parseMembers(flags []string) ([]conversation.Member, error) {
	out := []conversation.Member{}
	for _, m := range flags {
		name, key, ok := strings.Cut(m, "=")
		if !ok || name == "" || key == "" {
			return nil, usagef("--member %q: write NAME=KEY (the key from 'twokey id show')", m)
		}
		if _, err := conversation.ParseKeyID(key); err != nil {
			return nil, usagef("--member %s: %v", name, err)
		}
		out = append(out, conversation.Member{Key: key, Name: name})
	}
	return out, nil
}
