package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as Go writes durations (30s, 15m,
// 720h) or in whole days (90d).
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string {
	td := time.Duration(d)
	if td != 0 && td%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	}
	s := td.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ParseDuration reads a Go duration or a whole number of days ("90d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		if err != nil || days < 0 || days > 100*365 {
			return 0, fmt.Errorf("%q is not a duration (use 30s, 15m, 24h or 90d)", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use 30s, 15m, 24h or 90d)", s)
	}
	return d, nil
}

// UnmarshalYAML reads a duration scalar.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a duration such as 30s or 90d", n.Line)}}
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, err.Error())}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// field is one setting: its dotted path, variable, flag and value.
type field struct {
	path   string // tls.mode
	env    string // TWOKEY_TLS_MODE
	flag   string // tls-mode, or "" for none
	secret bool
	help   string
	v      reflect.Value
}

// fields lists every setting of c in declaration order.
func (c *Config) fields() []field {
	var out []field
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !sf.IsExported() {
				continue
			}
			path := name
			if prefix != "" {
				path = prefix + "." + name
			}
			fv := v.Field(i)
			if fv.Kind() == reflect.Struct {
				walk(fv, path)
				continue
			}
			f := field{path: path, v: fv, secret: sf.Tag.Get("secret") == "true", help: sf.Tag.Get("help")}
			f.env = sf.Tag.Get("env")
			if f.env == "-" {
				f.env = "" // set only in the file
			} else if f.env == "" {
				f.env = "TWOKEY_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
			}
			switch fl := sf.Tag.Get("flag"); fl {
			case "-":
			case "":
				f.flag = strings.NewReplacer(".", "-", "_", "-").Replace(path)
			default:
				f.flag = fl
			}
			out = append(out, f)
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}

// Paths lists every setting's dotted path, variable and flag (for docs
// and tests).
func Paths() [][3]string {
	var out [][3]string
	for _, f := range Default().fields() {
		out = append(out, [3]string{f.path, f.env, f.flag})
	}
	return out
}

// set stores the text values of one setting. Lists and maps take several
// values (from a repeated flag) or one comma-separated value (from a
// variable); a map's entries are NAME=VALUE and are merged by name.
func (f field) set(values []string) error {
	one := func() string {
		if len(values) == 0 {
			return ""
		}
		return values[len(values)-1]
	}
	switch f.v.Interface().(type) {
	case Duration:
		d, err := ParseDuration(one())
		if err != nil {
			return err
		}
		f.v.Set(reflect.ValueOf(Duration(d)))
		return nil
	}
	switch f.v.Kind() {
	case reflect.String:
		f.v.SetString(one())
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(one()))
		if err != nil {
			return fmt.Errorf("%q is not true or false", one())
		}
		f.v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(one()), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", one())
		}
		f.v.SetInt(n)
	case reflect.Slice:
		var list []string
		for _, v := range splitAll(values) {
			list = append(list, v)
		}
		f.v.Set(reflect.ValueOf(list))
	case reflect.Map:
		m := map[string]string{}
		if !f.v.IsNil() {
			for k, v := range f.v.Interface().(map[string]string) {
				m[k] = v
			}
		}
		for _, kv := range splitAll(values) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
				return fmt.Errorf("%q is not NAME=VALUE", kv)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		f.v.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("cannot set a %s", f.v.Kind())
	}
	return nil
}

// splitAll splits each value at commas and drops empty items.
func splitAll(values []string) []string {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// text renders a setting's value for flag defaults and display.
func (f field) text() string {
	switch x := f.v.Interface().(type) {
	case Duration:
		return x.String()
	case []string:
		return strings.Join(x, ",")
	case map[string]string:
		parts := []string{}
		for _, k := range sortedKeys(x) {
			parts = append(parts, k+"="+x[k])
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(f.v.Interface())
}
