package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/conversation"
)

func newIDCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Make and show Ed25519 identities",
		Long: `An identity is an Ed25519 key pair in a file with mode 0600. Its public key's
id (43 characters of base64url) is how everyone refers to you. Choose which
identity a command acts as with --identity FILE or TWOKEY_IDENTITY, so that
several people can share one machine in a demo.`,
	}
	var name, out string
	newCmd := &cobra.Command{
		Use:     "new --name NAME [--out FILE]",
		Short:   "Make a new identity",
		Example: "  twokey id new --name alice --out alice.json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := conversation.ValidateName("identity", name, true); err != nil {
				return usagef("--name: %v", err)
			}
			path := out
			if path == "" {
				path = f.identityPath()
			}
			id, err := conversation.NewIdentity(name)
			if err != nil {
				return err
			}
			if err := id.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "created identity %s\nkey  %s\nfile %s (mode 0600)\n", name, id.KeyID(), path)
			return nil
		},
	}
	newCmd.Flags().StringVar(&name, "name", "", "your name, as others will see it (required)")
	newCmd.Flags().StringVar(&out, "out", "", "file to write (default: the --identity path)")
	show := &cobra.Command{
		Use:     "show",
		Short:   "Print the selected identity's name and key id",
		Example: "  twokey id show\n  twokey --identity bob.json id show",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := f.loadIdentity()
			if err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "name %s\nkey  %s\nfile %s\n", id.Name, id.KeyID(), f.identityPath())
			return nil
		},
	}
	key := &cobra.Command{
		Use:     "key",
		Short:   "Print only the selected identity's key id (for scripts)",
		Example: "  twokey id key\n  BOB=$(twokey --identity bob.json id key)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := f.loadIdentity()
			if err != nil {
				return err
			}
			fmt.Fprintln(f.io.Out, id.KeyID())
			return nil
		},
	}
	cmd.AddCommand(newCmd, show, key)
	return cmd
}
