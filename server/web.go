package server

import (
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/twokey/twokey/web"
)

// contentSecurityPolicy is the browser app's policy: its own scripts,
// styles and connections only, no inline code, no eval, never framed.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// securityHeaders are set on every response, the app's files and the
// API's JSON alike.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// mountApp serves the browser app: index.html at / and each embedded file
// at its own path, by an exact route, so that every other path still gets
// the API's JSON 404.
func (a *API) mountApp() {
	_ = fs.WalkDir(web.App, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(web.App, p)
		if err != nil {
			return err
		}
		route := "/" + p
		if p == "index.html" {
			route = "/{$}"
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		switch {
		case strings.HasSuffix(p, ".js"):
			ctype = "text/javascript; charset=utf-8"
		case ctype == "":
			ctype = "text/plain; charset=utf-8" // the vendored licences and checksums
		}
		a.mux.HandleFunc("GET "+route, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			_, _ = w.Write(data)
		})
		return nil
	})
}
