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
	if !utf8.Valid(data) {
		// encoding/json reads a bad byte as U+FFFD: the bytes signed and
		// what a reader decodes would differ, and an export would carry
		// bytes that are not text.
		return twokey.Errorf(twokey.EBadPayload, "payload is not valid UTF-8 (byte %d); send text as UTF-8", invalidAt(data))
	}
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
