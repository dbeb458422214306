package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// FileName is the configuration file's usual name.
const FileName = "twokey.yaml"

// MaxFileSize bounds a configuration file.
const MaxFileSize = 1 << 20

// Find says which configuration file to read: the one named by the flag,
// else by TWOKEY_CONFIG (both must exist), else home/twokey.yaml when it
// exists, else none ("").
func Find(flag, home string, getenv func(string) string) (string, error) {
	for _, p := range []struct{ path, what string }{{flag, "--config"}, {getenv("TWOKEY_CONFIG"), "TWOKEY_CONFIG"}} {
		if p.path == "" {
			continue
		}
		if _, err := os.Stat(p.path); err != nil {
			return "", fmt.Errorf("%s %s: %w", p.what, p.path, errors.Unwrap(err))
		}
		return p.path, nil
	}
	if home == "" {
		return "", nil
	}
	p := filepath.Join(home, FileName)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", nil
}

// Load returns the defaults overridden by the file at path (none when path
// is "") and then by the TWOKEY_* variables getenv returns. Flags come
// last, with ApplyFlags; Validate checks the result.
func Load(path string, getenv func(string) string) (*Config, error) {
	c := Default()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read configuration: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read configuration %s: %w", path, err)
		}
		if err := c.LoadYAML(path, data); err != nil {
			return nil, err
		}
		if err := c.checkSecretFile(path); err != nil {
			return nil, err
		}
	}
	if getenv != nil {
		if err := c.LoadEnv(getenv); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// checkSecretFile refuses a configuration file that holds a secret
// (management.key, master_key) when its group or others have any access
// to it, as the server refuses such a master key file.
func (c *Config) checkSecretFile(path string) error {
	if runtime.GOOS == "windows" {
		return nil // no Unix permission bits
	}
	var held []string
	for _, f := range c.fields() {
		if f.secret && f.v.String() != "" && strings.HasPrefix(c.Source(f.path), path+":") {
			held = append(held, f.path)
		}
	}
	for i, n := range c.Notifications {
		if n.Secret != "" && strings.HasPrefix(c.Source("notifications"), path+":") {
			held = append(held, fmt.Sprintf("notifications[%d].secret", i))
		}
	}
	if len(held) == 0 {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("read configuration: %w", err)
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		return &Error{Problems: []string{fmt.Sprintf("%s: the file holds a secret (%s) but its mode %04o opens it to other users; run 'chmod 600 %s', or move the secret to the environment (%s)",
			path, strings.Join(held, ", "), mode, path, envOf(held))}}
	}
	return nil
}

// envOf names the variables of the settings at paths.
func envOf(paths []string) string {
	var out []string
	for _, f := range Default().fields() {
		for _, p := range paths {
			if f.path == p {
				out = append(out, f.env)
			}
		}
	}
	return strings.Join(out, ", ")
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// LoadYAML applies a configuration file's content; name is used in errors
// ("twokey.yaml:12: tls.mode: ..."). Unknown fields are errors.
func (c *Config) LoadYAML(name string, data []byte) error {
	at := func(line int) string {
		if line > 0 {
			return name + ":" + strconv.Itoa(line)
		}
		return name
	}
	if len(data) > MaxFileSize {
		return &Error{Problems: []string{fmt.Sprintf("%s: the file is over %d bytes", name, MaxFileSize)}}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: the defaults
		}
		line, msg := splitLine(err.Error())
		return &Error{Problems: []string{fmt.Sprintf("%s: %s", at(line), msg)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return &Error{Problems: []string{fmt.Sprintf("%s: the file holds more than one YAML document ('---'); put everything in one", at(extra.Line))}}
	}
	if len(doc.Content) == 0 || (doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null") {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return &Error{Problems: []string{fmt.Sprintf("%s: the file must be a mapping of settings (addr: ..., tls: ...)", at(root.Line))}}
	}
	// Every key's line, by path; and the keys on each line with their
	// values (a flow mapping, tls: {mode: x, force: y}, has several).
	lineOf := map[string]int{}
	keys := map[int][]keyAt{}
	var index func(n *yaml.Node, prefix string)
	index = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			lineOf[path] = k.Line
			keys[k.Line] = append(keys[k.Line], keyAt{path, v})
			if v.Kind == yaml.MappingNode && prefix == "" && isSection(k.Value) {
				index(v, path)
			}
			if v.Kind == yaml.SequenceNode && prefix == "" && k.Value == "notifications" {
				// Each target's line and its keys' (notifications.0.url).
				for j, item := range v.Content {
					at := path + "." + strconv.Itoa(j)
					lineOf[at] = item.Line
					if item.Kind == yaml.MappingNode {
						index(item, at)
					}
				}
			}
		}
	}
	index(root, "")
	sdec := yaml.NewDecoder(bytes.NewReader(data))
	sdec.KnownFields(true)
	if err := sdec.Decode(c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			line, msg := splitLine(err.Error())
			return &Error{Problems: []string{fmt.Sprintf("%s: %s", at(line), msg)}}
		}
		var probs []string
		for _, m := range te.Errors {
			line, msg := splitLine(m)
			path := pathAt(keys, line, msg)
			if sm := unknownRE.FindStringSubmatch(msg); sm != nil {
				for _, k := range keys[line] {
					if k.path == sm[1] || strings.HasSuffix(k.path, "."+sm[1]) {
						path = k.path
					}
				}
				section := strings.TrimSuffix(path, "."+sm[1])
				if section == sm[1] {
					section = ""
				}
				probs = append(probs, fmt.Sprintf("%s: %s", at(line), unknownField(sm[1], section)))
				continue
			}
			if path != "" {
				msg = path + ": " + msg
			}
			probs = append(probs, fmt.Sprintf("%s: %s", at(line), msg))
		}
		return &Error{Problems: probs}
	}
	for path, line := range lineOf {
		c.setSource(path, at(line))
	}
	return nil
}

// keyAt is a key of the file and its value node.
type keyAt struct {
	path  string
	value *yaml.Node
}

var unknownRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

func isSection(name string) bool {
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		if n, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); n == name {
			return t.Field(i).Type.Kind() == reflect.Struct
		}
	}
	return false
}

// unknownField explains an unknown field and lists those that exist.
func unknownField(name, section string) string {
	var known []string
	if strings.HasPrefix(section, "notifications.") {
		t := reflect.TypeOf(Notification{})
		for i := 0; i < t.NumField(); i++ {
			known = append(known, t.Field(i).Tag.Get("yaml"))
		}
		return fmt.Sprintf("field %q is not known in a notification target; the fields are: %s", name, strings.Join(known, ", "))
	}
	for _, f := range Default().fields() {
		p := f.path
		if section != "" {
			var ok bool
			if p, ok = strings.CutPrefix(p, section+"."); !ok {
				continue
			}
		} else if i := strings.IndexByte(p, '.'); i >= 0 {
			p = p[:i]
		}
		if len(known) == 0 || known[len(known)-1] != p {
			known = append(known, p)
		}
	}
	where := "at the top level"
	if section != "" {
		where = "in " + section
	}
	return fmt.Sprintf("field %q is not known %s; the fields are: %s", name, where, strings.Join(known, ", "))
}

// pathAt is the setting an error on line is about: the key on that line
// (of several on one line, the one whose value the message quotes, else
// the innermost), or the nearest one above it.
func pathAt(keys map[int][]keyAt, line int, msg string) string {
	for l := line; l > 0 && line-l < 1000; l-- {
		ks := keys[l]
		if len(ks) == 0 {
			continue
		}
		for _, k := range ks {
			if k.value.Kind == yaml.ScalarNode && k.value.Value != "" &&
				(strings.Contains(msg, "`"+k.value.Value+"`") || strings.Contains(msg, `"`+k.value.Value+`"`)) {
				return k.path
			}
		}
		return ks[len(ks)-1].path
	}
	return ""
}

func splitLine(m string) (int, string) {
	if sm := lineRE.FindStringSubmatch(m); sm != nil {
		n, _ := strconv.Atoi(sm[1])
		return n, sm[2]
	}
	return 0, strings.TrimPrefix(m, "yaml: ")
}

// LoadEnv applies the TWOKEY_* variables that are set and not empty.
func (c *Config) LoadEnv(getenv func(string) string) error {
	var probs []string
	for _, f := range c.fields() {
		if f.env == "" {
			continue
		}
		v := getenv(f.env)
		if v == "" {
			continue
		}
		if err := f.set([]string{v}); err != nil {
			probs = append(probs, fmt.Sprintf("env %s: %s: %s", f.env, f.path, err.Error()))
			continue
		}
		c.setSource(f.path, "env "+f.env)
	}
	if len(probs) > 0 {
		return &Error{Problems: probs}
	}
	return nil
}

// BindFlags defines a flag for every setting that has one, with the
// built-in default shown in the help.
func BindFlags(fs *pflag.FlagSet) {
	for _, f := range Default().fields() {
		if f.flag == "" || fs.Lookup(f.flag) != nil {
			continue
		}
		help := f.help + " (" + f.path + ", env " + f.env + ")"
		switch f.v.Kind() {
		case reflect.Bool:
			fs.Bool(f.flag, f.v.Bool(), help)
		case reflect.Slice, reflect.Map:
			fs.StringArray(f.flag, nil, help+"; repeatable")
		default:
			fs.String(f.flag, f.text(), help)
		}
	}
}

// ApplyFlags applies the flags BindFlags defined that were given on the
// command line.
func (c *Config) ApplyFlags(fs *pflag.FlagSet) error {
	var probs []string
	for _, f := range c.fields() {
		if f.flag == "" || !fs.Changed(f.flag) {
			continue
		}
		var values []string
		switch f.v.Kind() {
		case reflect.Slice, reflect.Map:
			values, _ = fs.GetStringArray(f.flag)
		default:
			values = []string{fs.Lookup(f.flag).Value.String()}
		}
		if err := f.set(values); err != nil {
			probs = append(probs, fmt.Sprintf("flag --%s: %s: %s", f.flag, f.path, err.Error()))
			continue
		}
		c.setSource(f.path, "flag --"+f.flag)
	}
	if len(probs) > 0 {
		return &Error{Problems: probs}
	}
	return nil
}
