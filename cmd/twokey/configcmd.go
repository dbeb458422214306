package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

func newConfigCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "The server's configuration: twokey.yaml, TWOKEY_* variables and serve's flags",
	}
	var file, mkey string
	var remote, asJSON bool
	show := &cobra.Command{
		Use:   "show [--config FILE] [serve's flags] [--remote]",
		Short: "Print the effective configuration, where each value came from, secrets masked",
		Long: `Print the configuration 'twokey serve' would run with, given the same
file, environment and flags: flags win over TWOKEY_* variables, which win
over the file (--config, TWOKEY_CONFIG, or twokey.yaml in the data
directory), which wins over the defaults. Each value not at its default is
followed by a comment naming its source; the management key and the master
key are masked. A bad value is reported with its file and line, variable or
flag, and field, as serve would report it.

--remote asks the running server instead (the management API; it needs
TWOKEY_MANAGEMENT_KEY).`,
		Example: "  twokey config show\n  twokey config show --config ./twokey.yaml --tls-mode generate\n  twokey config show --remote",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if remote {
				m, err := f.mgmt(mkey)
				if err != nil {
					return err
				}
				running, err := m.Config(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(f, running)
				}
				b, err := yaml.Marshal(running)
				if err != nil {
					return err
				}
				fmt.Fprintf(f.io.Out, "# the running server's configuration (%s)\n%s", f.serverURL(), b)
				return nil
			}
			cfg, path, err := loadConfig(f, cmd.Flags(), file)
			if err != nil {
				return err
			}
			if asJSON {
				b, _ := json.MarshalIndent(cfg.Map(), "", "  ")
				fmt.Fprintln(f.rawOut, string(b))
				return nil
			}
			out, err := cfg.Show()
			if err != nil {
				return err
			}
			if path != "" {
				fmt.Fprintf(f.io.Out, "# configuration file %s\n", path)
			} else {
				fmt.Fprintln(f.io.Out, "# no configuration file: defaults, environment and flags")
			}
			_, err = f.io.Out.Write(out)
			return err
		},
	}
	addConfigFlags(show.Flags(), &file)
	show.Flags().BoolVar(&remote, "remote", false, "show the running server's configuration (management API)")
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	addMgmtFlag(show, &mkey)
	cmd.AddCommand(show)
	return cmd
}
