package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/conversation"
)

func newConvCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "conv",
		Short: "Create and list conversations",
		Long: `A conversation is a group chat held by the server: its members, and an
append-only, hash-chained log of signed messages. Its creator is its admin.
Name a conversation by its id, a unique prefix of the id, or its name.`,
	}
	var members []string
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
			rec, err := c.CreateConversation(cmd.Context(), args[0], ms)
			if err != nil {
				return err
			}
			var p conversation.CreatePayload
			_ = jsonUnmarshal(rec.Body, &p)
			fmt.Fprintf(f.io.Out, "created conversation %s (%s) with %d members\n", args[0], p.Conversation, len(p.Members))
			return nil
		},
	}
	create.Flags().StringArrayVar(&members, "member", nil, "a member as NAME=KEY (repeatable)")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List your conversations",
		Args:  cobra.NoArgs,
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
			fmt.Fprintln(tw, "NAME\tID\tMEMBERS\tRECORDS\tGATE\tPENDING")
			for _, s := range all {
				gate := "off"
				if s.GateEnabled {
					gate = "on"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\n", s.Name, s.ID, len(s.Members), s.Seq, gate, s.Pending)
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(create, ls)
	return cmd
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
