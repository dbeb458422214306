package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/templates"
)

func newTemplatesCmd(f *factory) *cobra.Command {
	var service string
	cmd := &cobra.Command{
		Use:   "templates [--service S]",
		Short: "List the catalog's call templates",
		Long: `A template is a named call pattern: a service, a method, an endpoint with
{param} placeholders, typed parameters, a suggested threshold and a risk
tier. 'twokey request CONV TEMPLATE k=v ...' fills one in and proposes it.`,
		Example: "  twokey templates\n  twokey templates --service httpbin",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, err := f.anonClient().Catalog(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TEMPLATE\tSERVICE\tMETHOD\tENDPOINT\tM\tRISK\tDESCRIPTION")
			for _, t := range cat.Templates {
				if service != "" && t.Service != service {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", t.Name, t.Service, t.Method, t.Endpoint, t.SuggestedApprovals, t.Risk, firstLine(t.Description))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "only this service's templates")
	show := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a template: parameters, an example and its suggested M",
		Example: "  twokey templates show dogs.breed",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, err := f.anonClient().Catalog(cmd.Context())
			if err != nil {
				return err
			}
			t, svc := findTemplate(cat, args[0])
			if t == nil {
				return unknownTemplate(cat, args[0])
			}
			fmt.Fprintf(f.io.Out, "%s — %s\n", t.Name, t.Description)
			fmt.Fprintf(f.io.Out, "  call        %s %s%s\n", t.Method, svc.BaseURL, t.Endpoint)
			fmt.Fprintf(f.io.Out, "  service     %s (key: %s)\n", t.Service, orDefault(svc.Auth, "none"))
			fmt.Fprintf(f.io.Out, "  risk        %s\n", t.Risk)
			fmt.Fprintf(f.io.Out, "  suggested M %d (what is enforced is the conversation's M and rules)\n", t.SuggestedApprovals)
			if len(t.Params) > 0 {
				fmt.Fprintln(f.io.Out, "  parameters:")
				for _, p := range t.Params {
					req := "optional"
					if p.Required {
						req = "required"
					}
					def := ""
					if p.Default != "" {
						def = ", default " + p.Default
					}
					desc := ""
					if p.Description != "" {
						desc = " — " + p.Description
					}
					fmt.Fprintf(f.io.Out, "    %-10s %s %s in %s%s%s\n", p.Name, req, orDefault(p.Type, "string"), p.In, def, desc)
				}
			}
			// Quoted for a shell, so that the line can be pasted as it is.
			example := append([]string{"twokey request CONV", t.Name}, t.ExampleArgs()...)
			fmt.Fprintf(f.io.Out, "  example     %s\n", strings.Join(example, " "))
			return nil
		},
	}
	cmd.AddCommand(show)
	return cmd
}

func findTemplate(cat *api.Catalog, name string) (*templates.Template, *catalog.Service) {
	for _, t := range cat.Templates {
		if t.Name == name {
			for _, s := range cat.Services {
				if s.Name == t.Service {
					return t, s
				}
			}
		}
	}
	return nil, nil
}

func templateNames(cat *api.Catalog) []string {
	var out []string
	for _, t := range cat.Templates {
		out = append(out, t.Name)
	}
	sort.Strings(out)
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
