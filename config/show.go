package config

import (
	"bytes"
	"strings"

	"gopkg.in/yaml.v3"
)

// Mask is what a set secret is shown as.
const Mask = "********"

// Map returns the configuration as nested maps keyed by the YAML names,
// with secrets masked: what `config show` and the management API print.
func (c *Config) Map() map[string]any {
	out := map[string]any{}
	for _, f := range c.fields() {
		m := out
		parts := strings.Split(f.path, ".")
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		var v any = f.v.Interface()
		switch x := v.(type) {
		case string:
			if f.secret && x != "" {
				v = Mask
			}
		case Duration:
			v = x.String()
		case []string:
			if x == nil {
				v = []string{}
			}
		case map[string]string:
			if x == nil {
				v = map[string]string{}
			}
		case []Notification:
			list := []map[string]any{}
			for _, n := range x {
				secret := ""
				if n.Secret != "" {
					secret = Mask
				}
				list = append(list, map[string]any{"name": n.Name, "url": n.URL, "format": n.Format,
					"conversations": nonNil(n.Conversations), "events": nonNil(n.Events), "detail": n.Detail, "secret": secret})
			}
			v = list
		}
		m[parts[len(parts)-1]] = v
	}
	return out
}

// Show renders the effective configuration as YAML, secrets masked, each
// setting not at its default followed by a comment saying where it came
// from.
func (c *Config) Show() ([]byte, error) {
	var root yaml.Node
	if err := root.Encode(c.Map()); err != nil {
		return nil, err
	}
	// Encode sorts map keys; put them back in declaration order.
	order := map[string]int{}
	for i, f := range c.fields() {
		order[f.path] = i
		if j := strings.IndexByte(f.path, '.'); j > 0 {
			if _, ok := order[f.path[:j]]; !ok {
				order[f.path[:j]] = i
			}
		}
	}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		type pair struct{ k, v *yaml.Node }
		pairs := make([]pair, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			pairs = append(pairs, pair{n.Content[i], n.Content[i+1]})
		}
		path := func(k *yaml.Node) string {
			if prefix == "" {
				return k.Value
			}
			return prefix + "." + k.Value
		}
		for i := 1; i < len(pairs); i++ {
			for j := i; j > 0 && order[path(pairs[j].k)] < order[path(pairs[j-1].k)]; j-- {
				pairs[j], pairs[j-1] = pairs[j-1], pairs[j]
			}
		}
		n.Content = n.Content[:0]
		for _, p := range pairs {
			full := path(p.k)
			if p.v.Kind == yaml.MappingNode && isSection(full) {
				walk(p.v, full)
			} else if src := c.Source(full); src != "default" {
				p.k.LineComment = src
				if p.v.Kind == yaml.ScalarNode {
					p.k.LineComment = ""
					p.v.LineComment = src
				}
			}
			n.Content = append(n.Content, p.k, p.v)
		}
	}
	walk(&root, "")
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	enc.Close()
	return buf.Bytes(), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
