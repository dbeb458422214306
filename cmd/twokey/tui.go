package main

import (
	"github.com/spf13/cobra"

	"github.com/twokey/twokey/tui"
)

func newTUICmd(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "tui [CONV]",
		Short: "The terminal UI: conversations, live cards, /approve and `a`",
		Long: `Open the terminal UI: your conversations on the left (with unread counts and
a mark where requests wait for your vote), the selected conversation's log as
cards on the right, live over the WebSocket, and an input line for chat and
commands (/approve ID, /reject ID, /request TEMPLATE k=v with a live preview,
/gate enable M, /secret add SERVICE, /members, /propose, /help).

Keys: a approve and r reject the selected request card, j/k or arrows to
move, Tab between panes, ? help, q quit. Every record's signature and the
hash chain are verified; an approval signs the digest of the request on
screen, computed here.`,
		Example: "  twokey tui\n  TWOKEY_IDENTITY=bob.json twokey tui ops",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			o := tui.Options{Backend: c, Self: c.ID.KeyID(), SelfName: c.ID.Name, Input: f.io.In, Output: f.rawOut}
			if len(args) == 1 {
				o.Conversation = args[0]
				if id, ok := c.Aliases[args[0]]; ok {
					o.Conversation = id // the TUI finds it by id
				}
			}
			return tui.Run(cmd.Context(), o)
		},
	}
}
