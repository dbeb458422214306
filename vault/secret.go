package vault

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/twokey/twokey"
)

// Secret is the stored form of one upstream API key: metadata in the clear,
// the value only as Ciphertext (sealed by [Vault.Store] under
// [SecretAAD] of its conversation, ID and service).
type Secret struct {
	ID             string    `json:"secret_id"`
	Conversation   string    `json:"conversation"`
	Service        string    `json:"service"`
	HeaderName     string    `json:"header_name"`
	HeaderTemplate string    `json:"header_template"`
	CreatedAt      time.Time `json:"created_at"`
	ExpiresAt      time.Time `json:"expires_at,omitzero"` // zero = no TTL
	ProvisionedBy  string    `json:"provisioned_by"`
	Ciphertext     []byte    `json:"ciphertext"`
}

// Defaults for a secret whose provisioner names no header.
const (
	DefaultHeaderName     = "Authorization"
	DefaultHeaderTemplate = "Bearer {value}"
)

const (
	valuePlaceholder  = "{value}"
	maxTemplateSize   = 256
	redactPlaceholder = "[redacted]"
)

// LogValue logs a secret's metadata, never its ciphertext.
func (s Secret) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("secret_id", s.ID),
		slog.String("conversation", s.Conversation),
		slog.String("service", s.Service),
		slog.String("header_name", s.HeaderName),
	}
	if !s.ExpiresAt.IsZero() {
		attrs = append(attrs, slog.Time("expires_at", s.ExpiresAt))
	}
	return slog.GroupValue(attrs...)
}

// Live reports whether the secret may be used at now: a secret without
// ExpiresAt always is; otherwise it is live strictly before ExpiresAt.
func (s *Secret) Live(now time.Time) bool {
	if s == nil {
		return false
	}
	return s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt)
}

// forbiddenHeaders may not carry a credential: hop-by-hop headers, which a
// proxy drops or interprets, and those net/http computes itself.
var forbiddenHeaders = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Host":                true,
	"Content-Length":      true,
}

// ValidateHeader checks a secret's header: name must be an HTTP token
// (RFC 9110) and not a hop-by-hop, Host or Content-Length header; template
// must contain "{value}" exactly once, no control characters (CR, LF, ...)
// and at most 256 bytes. Errors are bad_payload and name the field.
func ValidateHeader(name, template string) error {
	if name == "" {
		return twokey.Errorf(twokey.EBadPayload, "header_name is empty")
	}
	if len(name) > maxTemplateSize {
		return twokey.Errorf(twokey.EBadPayload, "header_name is longer than %d bytes", maxTemplateSize)
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return twokey.Errorf(twokey.EBadPayload, "header_name %q is not a valid HTTP header name (letters, digits and !#$%%&'*+-.^_`|~ only)", name)
		}
	}
	if canon := http.CanonicalHeaderKey(name); forbiddenHeaders[canon] {
		return twokey.Errorf(twokey.EBadPayload, "header_name %s may not carry a key: the connection or the proxy owns it", canon)
	}
	if len(template) > maxTemplateSize {
		return twokey.Errorf(twokey.EBadPayload, "header_template is longer than %d bytes", maxTemplateSize)
	}
	for i := 0; i < len(template); i++ {
		if c := template[i]; c < ' ' && c != '\t' || c == 0x7f {
			return twokey.Errorf(twokey.EBadPayload, "header_template contains a control character (CR, LF or another); it must be one line")
		}
	}
	if n := strings.Count(template, valuePlaceholder); n != 1 {
		return twokey.Errorf(twokey.EBadPayload, "header_template must contain {value} exactly once (it contains it %d times), for example %q", n, DefaultHeaderTemplate)
	}
	return nil
}

// isTokenChar reports whether c is a tchar of RFC 9110 section 5.6.2.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// Store seals value as the secret s, setting s.Ciphertext; the associated
// data is SecretAAD(s.Conversation, s.ID, s.Service), so the ciphertext opens
// only under this record. value must be a non-empty key of at most
// MaxSecretSize bytes in visible printable ASCII without '"' or '\' (else
// bad_payload, see checkValue); Store does not keep it.
func (v *Vault) Store(s *Secret, value []byte) error {
	if s == nil {
		return errors.New("vault: Store of a nil secret")
	}
	if err := checkValue(value); err != nil {
		return err
	}
	blob, err := v.Seal(value, SecretAAD(s.Conversation, s.ID, s.Service))
	if err != nil {
		return err
	}
	s.Ciphertext = blob
	return nil
}

// Inject opens the secret s, with the associated data from s's own fields so
// a ciphertext moved under another record fails, and sets the header
// s.HeaderName (canonicalized, replacing any value in any letter case) to
// s.HeaderTemplate with {value} replaced by the key. An empty HeaderName or
// HeaderTemplate means the default. It also sets Accept-Encoding: identity
// (replacing any), so that what comes back can be searched for the key.
// Inject does not check expiry; callers use Live first.
//
// It returns a Redactor that knows the key for redacting the response; the
// caller must Close it to zero the key. Every other plaintext buffer Inject
// makes is zeroed before it returns; the header value string itself cannot
// be, and lives as long as req.
func (v *Vault) Inject(req *http.Request, s *Secret) (*Redactor, error) {
	if req == nil || s == nil {
		return nil, errors.New("vault: Inject needs a request and a secret")
	}
	name, tpl := s.HeaderName, s.HeaderTemplate
	if name == "" {
		name = DefaultHeaderName
	}
	if tpl == "" {
		tpl = DefaultHeaderTemplate
	}
	if err := ValidateHeader(name, tpl); err != nil {
		return nil, fmt.Errorf("vault: secret %s of conversation %s: %w", s.ID, s.Conversation, err)
	}
	value, err := v.Open(s.Ciphertext, SecretAAD(s.Conversation, s.ID, s.Service))
	if err != nil {
		return nil, fmt.Errorf("vault: secret %s of conversation %s for %s: %w", s.ID, s.Conversation, s.Service, err)
	}
	if err := checkInjectable(value); err != nil {
		clear(value)
		return nil, fmt.Errorf("vault: secret %s of conversation %s: %w", s.ID, s.Conversation, err)
	}
	i := strings.Index(tpl, valuePlaceholder)
	hv := make([]byte, 0, len(tpl)-len(valuePlaceholder)+len(value))
	hv = append(hv, tpl[:i]...)
	hv = append(hv, value...)
	hv = append(hv, tpl[i+len(valuePlaceholder):]...)

	if req.Header == nil {
		req.Header = http.Header{}
	}
	for k := range req.Header {
		if strings.EqualFold(k, name) {
			delete(req.Header, k)
		}
	}
	req.Header[http.CanonicalHeaderKey(name)] = []string{string(hv)}
	// The executor asks for the body unencoded (Accept-Encoding: identity)
	// and withholds one that comes encoded anyway: a compressed echo of
	// the key would get past the redactor returned here.
	return newRedactor(value, hv), nil
}
