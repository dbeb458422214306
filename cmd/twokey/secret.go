package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/gate"
)

func newSecretCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Provision, list and revoke upstream API keys",
		Long: `An upstream API key is sealed on this machine to the gateway's box key
(X25519 sealed box) and stored encrypted (AES-256-GCM) in the gateway's vault.
Nobody reads it back: the gateway injects it into approved calls only, and
redacts it from responses. The key is read from a hidden prompt or standard
input, never from the command line.`,
	}
	var service, header, template string
	var ttl time.Duration
	add := &cobra.Command{
		Use:   "add CONV --service S [--header H] [--template T] [--ttl D]",
		Short: "Seal and store a service's API key",
		Example: "  twokey secret add ops --service httpbin            # prompts, input hidden\n" +
			"  printf %s \"$KEY\" | twokey secret add ops --service httpbin --ttl 720h\n" +
			"  twokey secret add ops --service httpbin --header X-Api-Key --template '{value}'",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if service == "" {
				return usagef("--service is required ('twokey templates' lists the services)")
			}
			// Checked before the key is read: 500ms would otherwise become
			// no expiry, and 1.9s one second.
			if _, err := client.TTLSeconds(ttl); err != nil {
				return usagef("--ttl: %s", twokey.ErrorMessage(err))
			}
			c, conv, err := f.conversation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			// A service the catalog does not have, or one that takes no
			// key, is refused before the key is read or sealed.
			if err := checkSecretService(cmd.Context(), c, service); err != nil {
				return err
			}
			value, err := readSecret(f, service)
			if err != nil {
				return err
			}
			defer clear(value)
			rec, err := c.AddSecret(cmd.Context(), conv.ID, service, header, template, ttl, value)
			if err != nil {
				return err
			}
			var p gate.SecretStoredPayload
			_ = jsonUnmarshal(rec.Body, &p)
			exp := "no expiry"
			if p.ExpiresAt != "" {
				exp = "expires " + string(p.ExpiresAt)
			}
			fmt.Fprintf(f.io.Out, "stored secret %s for %s (header %s: %s, %s)\n", p.SecretID, service, p.HeaderName, p.HeaderTemplate, exp)
			return nil
		},
	}
	add.Flags().StringVar(&service, "service", "", "the service this key is for (required)")
	add.Flags().StringVar(&header, "header", "", "header to inject (default: the service's, usually Authorization)")
	add.Flags().StringVar(&template, "template", "", "header value with {value} for the key (default: the service's, usually 'Bearer {value}')")
	add.Flags().DurationVar(&ttl, "ttl", 0, "time to live, at least 1s, rounded up to whole seconds, e.g. 720h (default: no expiry)")
	ls := &cobra.Command{
		Use:     "ls CONV",
		Short:   "List stored secrets (metadata only)",
		Example: "  twokey secret ls ops",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, conv, g, err := f.gateOf(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(g.Secrets) == 0 {
				fmt.Fprintf(f.io.Out, "no secrets in %s; add one with 'twokey secret add %s --service S'\n", conv.Name, conv.Name)
				return nil
			}
			cat, err := c.Catalog(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSERVICE\tHEADER\tTEMPLATE\tBY\tCREATED\tEXPIRES\tLIVE\tUSE")
			for _, s := range g.Secrets {
				exp := "never"
				if s.ExpiresAt != "" {
					exp = s.ExpiresAt
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", s.SecretID[:8], s.Service, s.HeaderName, s.HeaderTemplate, nameOf(g, s.ProvisionedBy), s.CreatedAt, exp, s.Live, secretUse(s, g.Secrets, cat))
			}
			return tw.Flush()
		},
	}
	var rid, rservice string
	revoke := &cobra.Command{
		Use:     "revoke CONV --service S | --id ID",
		Short:   "Revoke a secret by id, or every secret of a service",
		Example: "  twokey secret revoke ops --service httpbin",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (rid == "") == (rservice == "") {
				return usagef("give exactly one of --service or --id")
			}
			c, conv, err := f.conversation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if rid != "" && len(rid) < 36 {
				g, err := c.Gate(cmd.Context(), conv.ID)
				if err != nil {
					return err
				}
				var hits []string
				for _, s := range g.Secrets {
					if len(s.SecretID) >= len(rid) && s.SecretID[:len(rid)] == rid {
						hits = append(hits, s.SecretID)
					}
				}
				if len(hits) != 1 {
					return usagef("--id %q matches %d secrets; give more of the id", rid, len(hits))
				}
				rid = hits[0]
			}
			rec, err := c.RevokeSecret(cmd.Context(), conv.ID, rid, rservice)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "revoked (record #%d)\n", rec.Seq)
			return nil
		},
	}
	revoke.Flags().StringVar(&rid, "id", "", "secret id (or a unique prefix)")
	revoke.Flags().StringVar(&rservice, "service", "", "revoke every secret of this service")
	cmd.AddCommand(add, ls, revoke)
	return cmd
}

// checkSecretService refuses, before a key is read, a service the server's
// catalog does not have or one that takes no key (catalog.CheckTakesKey,
// the gateway's own refusal).
func checkSecretService(ctx context.Context, c *client.Client, service string) error {
	cat, err := c.Catalog(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, s := range cat.Services {
		if s.Name == service {
			if err := catalog.CheckTakesKey(s, cat.Services); err != nil {
				return usageError{"--" + twokey.ErrorMessage(err)} // "--service dogceo takes no key": the flag is what is wrong
			}
			return nil
		}
		if s.TakesKey() {
			names = append(names, s.Name)
		}
	}
	return usagef("--service %s: this server's catalog has no such service; the services that take a key are %s ('twokey templates' lists the catalog)", service, strings.Join(names, ", "))
}

// secretUse says whether a call made now gets s (the server's in_use: the
// newest live secret of a service that takes a key), and if not, why.
func secretUse(s api.SecretInfo, all []api.SecretInfo, cat *api.Catalog) string {
	switch {
	case s.InUse:
		return "in use"
	case !s.Live:
		return "expired"
	}
	for _, svc := range cat.Services {
		if svc.Name == s.Service && !svc.TakesKey() {
			return "never sent: " + s.Service + " takes no key"
		}
	}
	for _, o := range all {
		if o.Service == s.Service && o.InUse {
			return "superseded by " + o.SecretID[:8] + " (newer)"
		}
	}
	return "not sent"
}

// readSecret reads the key from a hidden terminal prompt, or from
// standard input when it is not a terminal (one line, or all of it).
func readSecret(f *factory, service string) ([]byte, error) {
	if file, ok := f.io.In.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
		fmt.Fprintf(f.io.Err, "API key for %s (input hidden): ", service)
		b, err := term.ReadPassword(int(file.Fd()))
		fmt.Fprintln(f.io.Err)
		if err != nil {
			return nil, err
		}
		return checkSecret(b)
	}
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(f.io.In), 8<<10+1))
	if err != nil {
		return nil, err
	}
	return checkSecret(b)
}

func checkSecret(b []byte) ([]byte, error) {
	v := bytes.TrimRight(b, "\r\n")
	if len(v) == 0 {
		return nil, usagef("no key given: type it at the prompt or pipe it on standard input")
	}
	if len(v) > 8<<10 {
		return nil, usagef("the key is over 8 KiB; is that the right input?")
	}
	return v, nil
}
