package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
)

// mgmt returns a management client; the key comes from --management-key
// or TWOKEY_MANAGEMENT_KEY. The client package's rules on TLS, plain
// http:// and redirects hold here as for every other command.
func (f *factory) mgmt(flagKey string) (*client.Management, error) {
	key := flagKey
	if key == "" {
		key = f.getenv("TWOKEY_MANAGEMENT_KEY")
	}
	if key == "" {
		return nil, usagef("the management API needs its key: set TWOKEY_MANAGEMENT_KEY (or --management-key)")
	}
	o, err := f.clientOptions()
	if err != nil {
		return nil, err
	}
	return client.OpenManagement(f.serverURL(), key, o)
}

// addMgmtFlag adds --management-key to a command.
func addMgmtFlag(cmd *cobra.Command, key *string) {
	cmd.PersistentFlags().StringVar(key, "management-key", "", "the server's management key (prefer env TWOKEY_MANAGEMENT_KEY: a flag shows in the process list)")
}

type keysCreateOptions struct {
	name, conversation, templates, rate, expires string
	monthly                                      int64
	keyOnly                                      bool
}

func newKeysCmd(f *factory) *cobra.Command {
	var mkey string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Program keys: for agents and jobs that may propose calls but never approve them",
		Long: `A program key lets a program (an AI agent, a CI job) propose calls in one
conversation: with Authorization: Bearer KEY it submits to POST
/v1/programs/requests or calls through /v1/proxy/CONV/SERVICE/PATH. Its
proposals need M signer approvals; the program's own never counts.

The key is shown once, when it is made (or rotated); the server keeps only
its SHA-256. These commands use the management API: they need the server's
management key (TWOKEY_MANAGEMENT_KEY) and run on the server's machine
unless management.allow_remote is on.`,
	}
	addMgmtFlag(cmd, &mkey)
	cmd.AddCommand(newKeysCreateCmd(f, &mkey), newKeysLsCmd(f, &mkey), newKeysRotateCmd(f, &mkey),
		newKeysSimpleCmd(f, &mkey, "enable", "Let a disabled key work again", func(ctx context.Context, m *client.Management, name string) error {
			_, err := m.EnableKey(ctx, name, true)
			return err
		}),
		newKeysSimpleCmd(f, &mkey, "disable", "Stop a key (401) until it is enabled again", func(ctx context.Context, m *client.Management, name string) error {
			_, err := m.EnableKey(ctx, name, false)
			return err
		}),
		newKeysSimpleCmd(f, &mkey, "delete", "Delete a key for good", func(ctx context.Context, m *client.Management, name string) error {
			return m.DeleteKey(ctx, name)
		}))
	return cmd
}

func newKeysCreateCmd(f *factory, mkey *string) *cobra.Command {
	o := &keysCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create --name N --conversation C [--templates GLOBS] [--rate 60/m] [--monthly N] [--expires 30d]",
		Short: "Make a program key (shown once)",
		Example: "  twokey keys create --name claude-code --conversation ops --templates 'hn.*,httpbin.*' --rate 60/m --monthly 1000 --expires 30d\n" +
			"  KEY=$(twokey keys create --name ci --conversation ops --key-only)",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runKeysCreate(cmd.Context(), f, *mkey, o) },
	}
	fl := cmd.Flags()
	fl.StringVar(&o.name, "name", "", "the program's name (required; letters, digits, . _ -)")
	fl.StringVar(&o.conversation, "conversation", "", "the conversation it proposes to, by name or id (required)")
	fl.StringVar(&o.templates, "templates", "", "comma-separated globs of templates it may call, e.g. 'hn.*,httpbin.*' (default: any call)")
	fl.StringVar(&o.rate, "rate", "", "at most N requests per unit, e.g. 60/m, 10/s, 1000/h (default: no limit)")
	fl.Int64Var(&o.monthly, "monthly", 0, "at most N requests per calendar month, UTC (default: no cap)")
	fl.StringVar(&o.expires, "expires", "", "the key stops working after this long, e.g. 30d or 12h (default: never)")
	fl.BoolVar(&o.keyOnly, "key-only", false, "print only the key (for scripts)")
	return cmd
}

func runKeysCreate(ctx context.Context, f *factory, mkey string, o *keysCreateOptions) error {
	if o.name == "" || o.conversation == "" {
		return usagef("--name and --conversation are required")
	}
	if o.monthly < 0 {
		return usagef("--monthly must be positive")
	}
	m, err := f.mgmt(mkey)
	if err != nil {
		return err
	}
	in := api.KeyCreate{Name: o.name, Conversation: o.conversation, Rate: o.rate, Monthly: o.monthly, Expires: o.expires}
	for _, t := range strings.Split(o.templates, ",") {
		if t = strings.TrimSpace(t); t != "" {
			in.Templates = append(in.Templates, t)
		}
	}
	out, err := m.CreateKey(ctx, in)
	if err != nil {
		return err
	}
	printNewKey(f, out, o.keyOnly, "created")
	return nil
}

func printNewKey(f *factory, nk api.NewKey, keyOnly bool, what string) {
	if keyOnly {
		fmt.Fprintln(f.io.Out, nk.Key)
		return
	}
	p := nk.Program
	fmt.Fprintf(f.io.Out, "%s program key %q for conversation %s\n", what, p.Name, orDefault(p.ConversationName, p.Conversation))
	fmt.Fprintf(f.io.Out, "\n  %s\n\n", nk.Key)
	fmt.Fprintln(f.io.Out, "This is the only time the key is shown: the server keeps only its hash. Store it now.")
	fmt.Fprintf(f.io.Out, "policy: %s\n", policyText(p))
	for _, old := range p.OldKeys {
		fmt.Fprintf(f.io.Out, "the previous key %s... stays valid until %s\n", old.Prefix, old.ValidUntil)
	}
	fmt.Fprintf(f.io.Out, "use it: twokey snippet curl --key-name %s\n", p.Name)
}

func policyText(k api.KeyInfo) string {
	parts := []string{}
	if len(k.Templates) > 0 {
		parts = append(parts, "templates "+strings.Join(k.Templates, ","))
	} else {
		parts = append(parts, "any template")
	}
	parts = append(parts, "rate "+k.Rate)
	if k.Monthly > 0 {
		parts = append(parts, fmt.Sprintf("monthly %d", k.Monthly))
	}
	if k.ExpiresAt != "" {
		parts = append(parts, "expires "+k.ExpiresAt)
	}
	return strings.Join(parts, "; ")
}

func newKeysLsCmd(f *factory, mkey *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "ls [--json]",
		Short:   "List program keys: prefix, name, created, last used, enabled, expiry, policy, this month's usage",
		Aliases: []string{"list"},
		Example: "  twokey keys ls\n  twokey keys ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.mgmt(*mkey)
			if err != nil {
				return err
			}
			keys, err := m.Keys(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONOut(f, keys)
			}
			if len(keys) == 0 {
				fmt.Fprintln(f.io.Out, "no program keys; make one with 'twokey keys create'")
				return nil
			}
			tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PREFIX\tNAME\tCONVERSATION\tCREATED\tLAST USED\tENABLED\tEXPIRES\tPOLICY\tTHIS MONTH")
			for _, k := range keys {
				month := fmt.Sprint(k.MonthUsage)
				if k.Monthly > 0 {
					month += fmt.Sprintf("/%d", k.Monthly)
				}
				tmpl := "any"
				if len(k.Templates) > 0 {
					tmpl = strings.Join(k.Templates, ",")
				}
				fmt.Fprintf(tw, "%s...\t%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\n", k.Prefix, k.Name, orDefault(k.ConversationName, k.Conversation),
					day(k.CreatedAt), orDefault(k.LastUsed, "never"), k.Enabled, orDefault(k.ExpiresAt, "never"),
					"templates "+tmpl+", rate "+k.Rate, month)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// day shortens an RFC 3339 time to its date and minute.
func day(t string) string {
	if len(t) >= 16 {
		return strings.Replace(t[:16], "T", " ", 1)
	}
	return t
}

func newKeysRotateCmd(f *factory, mkey *string) *cobra.Command {
	var grace string
	var keyOnly bool
	cmd := &cobra.Command{
		Use:   "rotate NAME [--grace 1h]",
		Short: "Give a program a new key; the old one stops now, or after the grace period you give",
		Example: "  twokey keys rotate ci                     # a key that leaked: the old one stops now\n" +
			"  twokey keys rotate claude-code --grace 1h # routine: the old key keeps working for an hour",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.mgmt(*mkey)
			if err != nil {
				return err
			}
			out, err := m.RotateKey(cmd.Context(), args[0], api.KeyRotate{Grace: grace})
			if err != nil {
				return err
			}
			printNewKey(f, out, keyOnly, "rotated")
			return nil
		},
	}
	cmd.Flags().StringVar(&grace, "grace", "", "how long the old key keeps working, at most 30d (default 0: it stops now)")
	cmd.Flags().BoolVar(&keyOnly, "key-only", false, "print only the new key (for scripts)")
	return cmd
}

func newKeysSimpleCmd(f *factory, mkey *string, verb, short string, run func(context.Context, *client.Management, string) error) *cobra.Command {
	return &cobra.Command{
		Use:     verb + " NAME",
		Short:   short,
		Example: "  twokey keys " + verb + " ci",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.mgmt(*mkey)
			if err != nil {
				return err
			}
			if err := run(cmd.Context(), m, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "%sd program key %q\n", strings.TrimSuffix(verb, "e"), args[0])
			return nil
		},
	}
}

// writeJSONOut writes v as JSON for programs to read: to the raw stream,
// since cleaning would change the data (the JSON encoding already escapes
// every control character).
func writeJSONOut(f *factory, v any) error {
	enc := json.NewEncoder(f.rawOut)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
