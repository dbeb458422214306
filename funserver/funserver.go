// Package funserver is the small upstream twokey ships for its fun
// templates (leet.translate and ascii.artify in the starter catalog), served
// by `twokey fun-server`.
//
// Routes:
//
//	POST /leet    {"text": "..."} -> {"text": "...", "leet": "..."}
//	POST /ascii   {"text": "..."} -> {"text": "...", "art": "..."}
//	GET  /health  -> {"status": "ok"}
//
// Request bodies are limited to MaxBodyBytes. Every error is JSON,
// {"error": "..."}: 400 for a body that is not {"text": "..."}, 404 for an
// unknown path, 405 (with Allow) for a wrong method, 413 for a body too
// large.
package funserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// DefaultAddr is where `twokey fun-server` listens unless told otherwise;
// the starter catalog's fun service points there.
const DefaultAddr = "127.0.0.1:8081"

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 64 << 10

// MaxArtChars is the longest text /ascii draws, in characters.
const MaxArtChars = 64

// Handler returns the fun server's HTTP handler.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/leet":
		if !allow(w, r, http.MethodPost) {
			return
		}
		text, ok := readText(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"text": text, "leet": Leet(text)})
	case "/ascii":
		if !allow(w, r, http.MethodPost) {
			return
		}
		text, ok := readText(w, r)
		if !ok {
			return
		}
		if text == "" {
			writeError(w, http.StatusBadRequest, `text is empty: send {"text": "HELLO"}`)
			return
		}
		if n := utf8.RuneCountInString(text); n > MaxArtChars {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("text has %d characters; /ascii draws at most %d", n, MaxArtChars))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"text": text, "art": Art(text)})
	case "/health":
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s; the fun server has POST /leet, POST /ascii and GET /health", r.URL.Path))
	}
}

// allow answers 405 unless r's method is one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(methods, " or ")))
	return false
}

// readText decodes a body of exactly {"text": "..."}; on failure it has
// written the error response.
func readText(w http.ResponseWriter, r *http.Request) (string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	var req struct {
		Text *string `json:"text"`
	}
	err := dec.Decode(&req)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("there is more after the JSON object")
			var tooBig *http.MaxBytesError
			if errors.As(terr, &tooBig) {
				err = terr
			}
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes))
		return "", false
	case err != nil:
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`the body is not the JSON object {"text": "..."}: %v`, err))
		return "", false
	case req.Text == nil:
		writeError(w, http.StatusBadRequest, `the body has no text: send {"text": "..."}`)
		return "", false
	}
	return *req.Text, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client has gone; nothing to do
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// Leet translates text into l33t speak: a→4, e→3, i→1, o→0, s→5, t→7, in
// either case; everything else is unchanged.
func Leet(text string) string {
	return leetReplacer.Replace(text)
}

var leetReplacer = strings.NewReplacer(
	"a", "4", "A", "4", "e", "3", "E", "3", "i", "1", "I", "1",
	"o", "0", "O", "0", "s", "5", "S", "5", "t", "7", "T", "7",
)

// Art draws text in 5-row block letters: A-Z (either case), 0-9, space and
// ! ? . , - : ' + = / ( ). Any other character is drawn as '?'. Letters are
// one column apart; rows end without trailing spaces and are joined by
// newlines.
func Art(text string) string {
	var rows [glyphRows]strings.Builder
	first := true
	for _, r := range strings.ToUpper(text) {
		g, ok := font[r]
		if !ok {
			g = font['?']
		}
		for i := range rows {
			if !first {
				rows[i].WriteByte(' ')
			}
			rows[i].WriteString(g[i])
		}
		first = false
	}
	lines := make([]string, glyphRows)
	for i := range rows {
		lines[i] = strings.TrimRight(rows[i].String(), " ")
	}
	return strings.Join(lines, "\n")
}
