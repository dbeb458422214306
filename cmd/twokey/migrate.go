package main

import (
	"github.com/spf13/cobra"

	"github.com/twokey/twokey/server"
)

func newMigrateCmd(f *factory) *cobra.Command {
	var to, file string
	cmd := &cobra.Command{
		Use:   "migrate --to etcd",
		Short: "Copy a server's bbolt database into an etcd cluster, to run several nodes on it",
		Long: `Copy everything the data directory's twokey.db holds (every conversation's
log, the requests, the vault's ciphertexts, the gateway's sealed keys,
program keys, webhooks, the request log) into an etcd cluster, under an
empty key prefix. Stop 'twokey serve' first: the file must not be in use.
The file is left as it was.

Then start every node with --store etcd, the same etcd settings, and the
master key of this data directory (its master.key, or TWOKEY_MASTER_KEY).
A request the file holds executing is claimed in the copy, so the first
executor fails it (interrupted) instead of sending it again. docs/ha.md
describes the setup.

The etcd settings are those of serve: flags, TWOKEY_ETCD_* variables or
twokey.yaml.`,
		Example: `  twokey migrate --to etcd --data-dir /var/lib/twokey --etcd-endpoints 10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379
  twokey migrate --to etcd --etcd-endpoints 127.0.0.1:2379 --etcd-prefix /team-b/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to != "etcd" {
				return usagef("migrate copies into etcd: pass --to etcd")
			}
			fs := cmd.Flags()
			cfg, _, err := loadConfigNoValidate(f, fs, file)
			if err != nil {
				return err
			}
			return server.MigrateToEtcd(cfg, f.io.Out)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "where to copy: etcd")
	addConfigFlags(cmd.Flags(), &file)
	return cmd
}
