package conversation

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/twokey/twokey"
)

// knownFields lists every field name the protocol defines. Go's decoder
// matches object keys to fields without regard to case; another client's
// does not. A payload spelling a known field in another case ("URL" for
// "url") would therefore mean one thing to the gateway and another to an
// auditor, so it is refused.
//
// Go's decoder folds case as bytes.EqualFold does, by Unicode simple
// folding: "ſervice" (U+017F) reaches the field "service" and "\u212aey"
// (KELVIN SIGN) reaches "key". strings.ToLower misses both, so names are
// compared under foldName, the decoder's own folding.
var knownFields = map[string]string{} // foldName(field) -> field

func init() {
	for _, f := range strings.Fields(`conversation created_at gateway text name members key
		required_approvals rules service endpoint method signers box_key secret_id header_name
		header_template ttl_seconds sealed expires_at provisioned_by secret_ids by request_id template
		url headers body request_digest reason status duration_ms approvers content_type truncated
		body_digest body_encoding redactions proposal_id add remove proposal_digest nonce program params`) {
		knownFields[foldName(f)] = f
	}
}

// opaqueFields hold user data whose keys are not protocol fields.
var opaqueFields = map[string]bool{"body": true, "headers": true, "params": true}

// CheckJSON insists that data is valid UTF-8 (PROTOCOL 2) and a single JSON
// object with no duplicate keys (exact or differing only in case), no
// protocol field spelled in another case, and nesting no deeper than
// twokey.MaxJSONDepth.
func CheckJSON(data []byte) error {
	_, _, err := checkPayload(data)
	return err
}

// checkPayload is CheckJSON that also reads the header fields. When done is
// true, h holds what json.Unmarshal(data, &h) would (every header field
// present is a string without escapes, or null); otherwise the caller
// unmarshals the header itself.
//
// Well-formed payloads take one walk (quickCheck) after json.Valid, without
// the allocations of encoding/json's tokenizer. Anything quickCheck is not
// sure of, every payload refused among them, goes through checkJSON, the
// token-by-token check, which alone writes refusals: quickCheck only ever
// accepts what checkJSON accepts.
func checkPayload(data []byte) (h Header, done bool, err error) {
	if !utf8.Valid(data) {
		// encoding/json reads a bad byte as U+FFFD: the bytes signed and
		// what a reader decodes would differ, and an export would carry
		// bytes that are not text.
		return Header{}, false, twokey.Errorf(twokey.EBadPayload, "payload is not valid UTF-8 (byte %d); send text as UTF-8", invalidAt(data))
	}
	if json.Valid(data) {
		q := quickCheck{data: data, hdr: &h, hdrOK: true}
		if q.top() {
			if !q.hdrOK {
				h = Header{}
			}
			return h, q.hdrOK, nil
		}
	}
	return Header{}, false, checkJSON(data)
}

// checkJSON is CheckJSON's token-by-token check of UTF-8 data.
func checkJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return badJSON(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return twokey.Errorf(twokey.EBadPayload, "payload is not a JSON object")
	}
	if err := walkObject(dec, 1, true); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return twokey.Errorf(twokey.EBadPayload, "payload has data after its JSON object")
	}
	return nil
}

// foldName maps a key to the smallest rune of each rune's Unicode simple
// fold orbit, as encoding/json does when it matches keys to fields: two
// keys Go's decoder treats as one field fold to the same string.
func foldName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		for {
			f := unicode.SimpleFold(r)
			if f <= r {
				r = f
				break
			}
			r = f
		}
		b.WriteRune(r)
	}
	return b.String()
}

// invalidAt returns the offset of the first byte of data that is not part
// of a UTF-8 sequence.
func invalidAt(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(data)
}

func badJSON(err error) error {
	return &twokey.Error{Code: twokey.EBadPayload, Message: "payload is not valid JSON: " + err.Error(), Err: err}
}

var errDepth = twokey.Errorf(twokey.EBadPayload, "payload nests deeper than %d levels", twokey.MaxJSONDepth)

// walkObject reads an object's members after its '{'. top marks the
// payload's own top level, where protocol field names are checked.
func walkObject(dec *json.Decoder, depth int, checkNames bool) error {
	if depth > twokey.MaxJSONDepth {
		return errDepth
	}
	seen := map[string]bool{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return badJSON(err)
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return nil
		}
		key, ok := tok.(string)
		if !ok {
			return twokey.Errorf(twokey.EBadPayload, "payload has a non-string object key")
		}
		folded := foldName(key)
		if seen[folded] {
			return twokey.Errorf(twokey.EBadPayload, "payload repeats the key %q", twokey.Clip(key))
		}
		seen[folded] = true
		if field, ok := knownFields[folded]; checkNames && ok && field != key {
			return twokey.Errorf(twokey.EBadPayload, "payload spells field %q as %q; field names are lower case", field, twokey.Clip(key))
		}
		if err := walkValue(dec, depth, checkNames && !opaqueFields[key]); err != nil {
			return err
		}
	}
}

func walkValue(dec *json.Decoder, depth int, checkNames bool) error {
	tok, err := dec.Token()
	if err != nil {
		return badJSON(err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return walkObject(dec, depth+1, checkNames)
	case '[':
		if depth+1 > twokey.MaxJSONDepth {
			return errDepth
		}
		for dec.More() {
			if err := walkValue(dec, depth+1, checkNames); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return badJSON(err)
		}
		return nil
	}
	return badJSON(errors.New("unexpected delimiter"))
}

// quickCheck walks JSON that json.Valid accepted and reports whether
// checkJSON accepts it too, mirroring walkObject and walkValue: the same
// depths, the same duplicate test (keys equal under Unicode simple
// folding, which is what foldName compares), the same field-name test. It
// answers false, and leaves the verdict to checkJSON, on anything it does
// not handle itself: a refusal, a key with an escape.
type quickCheck struct {
	data  []byte
	i     int
	hdr   *Header // the top level's header fields are read into it
	hdrOK bool    // no header field needs json.Unmarshal
}

// quickKeys is how many keys of one object are compared pairwise; beyond
// that, the object's folded keys go in a map, as in walkObject.
const quickKeys = 16

func (q *quickCheck) space() {
	for q.i < len(q.data) {
		switch q.data[q.i] {
		case ' ', '\t', '\n', '\r':
			q.i++
		default:
			return
		}
	}
}

func (q *quickCheck) top() bool {
	q.space()
	if q.i == len(q.data) || q.data[q.i] != '{' {
		return false
	}
	q.i++
	return q.object(1, true)
}

// str reads a string at q.i (its opening quote) and returns its contents,
// raw, and whether they hold an escape.
func (q *quickCheck) str() (raw []byte, escaped bool) {
	start := q.i + 1
	for q.i = start; ; q.i++ {
		switch q.data[q.i] {
		case '\\':
			escaped = true
			q.i++ // json.Valid checked the escape: skip the escaped byte
		case '"':
			q.i++
			return q.data[start : q.i-1], escaped
		}
	}
}

// object reads an object's members after its '{' (walkObject).
func (q *quickCheck) object(depth int, checkNames bool) bool {
	if depth > twokey.MaxJSONDepth {
		return false
	}
	var spans [quickKeys][2]int32 // the keys so far, as offsets into data
	n := 0
	var seen map[string]bool // past quickKeys keys: folded keys
	q.space()
	if q.data[q.i] == '}' {
		q.i++
		return true
	}
	for {
		q.space()
		keyStart := q.i + 1
		key, escaped := q.str()
		if escaped {
			return false
		}
		ascii := isASCII(key)
		if seen == nil && n < quickKeys {
			for _, sp := range spans[:n] {
				if bytes.EqualFold(q.data[sp[0]:sp[1]], key) {
					return false
				}
			}
			spans[n] = [2]int32{int32(keyStart), int32(keyStart + len(key))}
			n++
		} else {
			if seen == nil {
				seen = make(map[string]bool, 2*quickKeys)
				for _, sp := range spans[:n] {
					seen[foldName(string(q.data[sp[0]:sp[1]]))] = true
				}
			}
			folded := foldName(string(key))
			if seen[folded] {
				return false
			}
			seen[folded] = true
		}
		if checkNames {
			var field string
			var known bool
			if ascii && len(key) <= 64 {
				// foldName of ASCII is upper case (the fold orbits of k
				// and s reach beyond ASCII only to larger runes).
				var up [64]byte
				for j, c := range key {
					if 'a' <= c && c <= 'z' {
						c -= 'a' - 'A'
					}
					up[j] = c
				}
				field, known = knownFields[string(up[:len(key)])]
			} else {
				field, known = knownFields[foldName(string(key))]
			}
			if known && field != string(key) {
				return false
			}
		}
		q.space()
		q.i++ // ':'
		q.space()
		var into *string
		if depth == 1 && q.hdr != nil {
			switch string(key) {
			case "conversation":
				into = &q.hdr.Conversation
			case "created_at":
				into = &q.hdr.CreatedAt
			case "gateway":
				into = &q.hdr.Gateway
			}
		}
		if !q.value(depth, checkNames && !opaqueFields[string(key)], into) {
			return false
		}
		q.space()
		if q.data[q.i] == ',' {
			q.i++
			continue
		}
		q.i++ // '}'
		return true
	}
}

// value reads one value (walkValue). into, when set, is the header field
// the value is read into.
func (q *quickCheck) value(depth int, checkNames bool, into *string) bool {
	c := q.data[q.i]
	if into != nil && c != '"' && c != 'n' {
		q.hdrOK = false // a field of the wrong type: json.Unmarshal says which
	}
	switch c {
	case '{':
		q.i++
		return q.object(depth+1, checkNames)
	case '[':
		q.i++
		if depth+1 > twokey.MaxJSONDepth {
			return false
		}
		q.space()
		if q.data[q.i] == ']' {
			q.i++
			return true
		}
		for {
			q.space()
			if !q.value(depth+1, checkNames, nil) {
				return false
			}
			q.space()
			if q.data[q.i] == ',' {
				q.i++
				continue
			}
			q.i++ // ']'
			return true
		}
	case '"':
		raw, escaped := q.str()
		if into != nil {
			if escaped {
				q.hdrOK = false
			} else {
				*into = string(raw)
			}
		}
		return true
	}
	// A number, true, false or null: json.Valid checked its bytes.
	for q.i < len(q.data) {
		switch q.data[q.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return true
		}
		q.i++
	}
	return true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
