package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/templates"
)

// Parse decodes a catalog file strictly: a field the format does not know
// is an error, and so is a second YAML document. It validates each service
// and each template on its own and refuses names defined twice in the file;
// whether a template's service exists is checked by Add. Errors are
// bad_payload and begin with "name:line:" where the line is known, then
// name the service or template and the field.
func Parse(name string, data []byte) (*File, error) {
	bad := func(line int, format string, args ...any) error {
		where := name
		if line > 0 {
			where += ":" + strconv.Itoa(line)
		}
		return twokey.Errorf(twokey.EBadPayload, "%s: %s", where, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxFileSize {
		return nil, bad(0, "the file is %d bytes; a catalog file may have at most %d", len(data), MaxFileSize)
	}

	// First the node tree, for syntax errors and to find lines later.
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, bad(0, "the file is empty: a catalog file has a services: list and a templates: list")
		}
		return nil, bad(0, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			line = 0
		}
		return nil, bad(line, "the file holds more than one YAML document ('---'): put everything in one")
	}
	loc := newLocator(&doc)

	// Then the strict decode.
	var f File
	sdec := yaml.NewDecoder(bytes.NewReader(data))
	sdec.KnownFields(true)
	if err := sdec.Decode(&f); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) || len(te.Errors) == 0 {
			return nil, bad(0, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		msgs := make([]string, 0, len(te.Errors))
		line0 := 0
		for _, m := range te.Errors {
			line, text := splitLine(m)
			if line0 == 0 {
				line0 = line
			}
			msgs = append(msgs, loc.describe(line, text))
		}
		return nil, bad(line0, "%s", strings.Join(msgs, "; "))
	}

	// Each service and template on its own.
	svcLine := map[string]int{}
	for i := range f.Services {
		s := &f.Services[i]
		line := loc.itemLine("services", i)
		if err := validateService(s); err != nil {
			return nil, bad(line, "%s", twokey.ErrorMessage(err))
		}
		if prev, dup := svcLine[s.Name]; dup {
			return nil, bad(line, "service %q is defined twice (also at line %d): keep one", s.Name, prev)
		}
		svcLine[s.Name] = line
	}
	tmplLine := map[string]int{}
	for i := range f.Templates {
		t := &f.Templates[i]
		line := loc.itemLine("templates", i)
		if err := t.Validate(); err != nil {
			return nil, bad(line, "%s", twokey.ErrorMessage(err))
		}
		if prev, dup := tmplLine[t.Name]; dup {
			return nil, bad(line, "template %q is defined twice (also at line %d): keep one", t.Name, prev)
		}
		tmplLine[t.Name] = line
	}
	return &f, nil
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// splitLine splits yaml's "line N: message".
func splitLine(m string) (int, string) {
	if sm := lineRE.FindStringSubmatch(m); sm != nil {
		n, _ := strconv.Atoi(sm[1])
		return n, sm[2]
	}
	return 0, m
}

// locator finds which service or template, and which field, a line of the
// file belongs to.
type locator struct {
	lists map[string][]*yaml.Node // "services", "templates" -> items
}

func newLocator(doc *yaml.Node) *locator {
	l := &locator{lists: map[string][]*yaml.Node{}}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return l
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return l
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if (k.Value == "services" || k.Value == "templates") && v.Kind == yaml.SequenceNode {
			l.lists[k.Value] = v.Content
		}
	}
	return l
}

func (l *locator) itemLine(list string, i int) int {
	if items := l.lists[list]; i < len(items) {
		return items[i].Line
	}
	return 0
}

// describe rewrites a yaml type error message at line into one that names
// the service or template and the field.
func (l *locator) describe(line int, text string) string {
	var where, field string
	for _, list := range []string{"services", "templates"} {
		for i, item := range l.lists[list] {
			if line < item.Line || line > lastLine(item) {
				continue
			}
			kind := strings.TrimSuffix(list, "s")
			if n := mapValue(item, "name"); n != "" {
				where = fmt.Sprintf("%s %q", kind, n)
			} else {
				where = fmt.Sprintf("%s #%d", kind, i+1)
			}
			field = fieldAt(item, line, "")
		}
	}
	if sm := unknownFieldRE.FindStringSubmatch(text); sm != nil {
		text = fmt.Sprintf("field %q is not known; the fields are: %s", sm[1], knownFields(sm[2]))
	} else if field != "" {
		text = fmt.Sprintf("field %q: %s", field, text)
	}
	if where != "" {
		return where + ": " + text
	}
	return text
}

var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)

// knownFields lists the YAML fields of one of the catalog's types.
func knownFields(typeName string) string {
	var t reflect.Type
	switch typeName {
	case "catalog.File":
		t = reflect.TypeOf(File{})
	case "catalog.Service":
		t = reflect.TypeOf(Service{})
	case "templates.Template":
		t = reflect.TypeOf(templates.Template{})
	case "templates.Param":
		t = reflect.TypeOf(templates.Param{})
	default:
		return "see the starter catalog (twokey templates)"
	}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" {
			names = append(names, tag)
		}
	}
	return strings.Join(names, ", ")
}

// mapValue is the scalar value of key in mapping node n, or "".
func mapValue(n *yaml.Node, key string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// lastLine is the last line a node's content reaches.
func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		if l := lastLine(c); l > last {
			last = l
		}
	}
	return last
}

// fieldAt is the dotted path ("params[1].type") of the deepest field of n
// at line, or "".
func fieldAt(n *yaml.Node, line int, prefix string) string {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			if line < k.Line || line > lastLine(v) {
				continue
			}
			if deeper := fieldAt(v, line, path); deeper != "" {
				return deeper
			}
			return path
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if line >= c.Line && line <= lastLine(c) {
				return fieldAt(c, line, fmt.Sprintf("%s[%d]", prefix, i))
			}
		}
	}
	return ""
}
