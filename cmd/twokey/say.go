package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func newSayCmd(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:     "say CONV TEXT...",
		Short:   "Post a chat message",
		Example: `  twokey say ops "deploying at 5pm, please review"`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			conv, err := c.Conversation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			rec, err := c.Say(cmd.Context(), conv.ID, strings.Join(args[1:], " "))
			if err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "posted #%d to %s\n", rec.Seq, conv.Name)
			return nil
		},
	}
}
