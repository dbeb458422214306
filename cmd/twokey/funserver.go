package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
	"github.com/spf13/cobra"

	"github.com/twokey/twokey/funserver"
)

func newFunServerCmd(f *factory) *cobra.Command {
	var addr string
	var withHTTPBin, logRequests bool
	cmd := &cobra.Command{
		Use:   "fun-server [--addr 127.0.0.1:8081]",
		Short: "Run the small upstream behind the leet.translate and ascii.artify templates",
		Long: `Serve POST /leet (text to l33tsp34k), POST /ascii (text to ASCII art) and
GET /health. The starter catalog's "fun" service points at 127.0.0.1:8081;
point it elsewhere with 'twokey serve --service fun=URL'.

--httpbin also serves an httpbin (the API twokey's httpbin templates call)
under /httpbin, so the whole flow runs with no network:
'twokey serve --service httpbin=http://ADDR/httpbin'. --log-requests prints
each request the upstream receives, with credentials masked: it is how the
demo shows the injected key arriving.`,
		Example: "  twokey fun-server                                   # 127.0.0.1:8081, the fun service's default\n" +
			"  twokey fun-server --addr 127.0.0.1:9000 --httpbin   # then: twokey serve --service httpbin=http://127.0.0.1:9000/httpbin --service fun=http://127.0.0.1:9000",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			var h http.Handler = funserver.Handler()
			if withHTTPBin {
				mux := http.NewServeMux()
				mux.Handle("/httpbin/", http.StripPrefix("/httpbin", httpbin.New().Handler()))
				mux.Handle("/", h)
				h = mux
			}
			if logRequests {
				h = logUpstream(f.io.Out, h)
			}
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(f.io.Out, "listening on http://%s\n", ln.Addr())
			go func() {
				<-cmd.Context().Done()
				srv.Close()
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", funserver.DefaultAddr, "address to listen on")
	cmd.Flags().BoolVar(&withHTTPBin, "httpbin", false, "also serve httpbin under /httpbin")
	cmd.Flags().BoolVar(&logRequests, "log-requests", false, "print each request received, credentials masked")
	return cmd
}

// logUpstream prints one line per request with its credential headers
// masked to their first characters.
func logUpstream(w io.Writer, h http.Handler) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var creds []string
		for _, name := range []string{"Authorization", "X-Api-Key"} {
			if v := r.Header.Get(name); v != "" {
				creds = append(creds, name+": "+mask(v))
			}
		}
		if len(creds) == 0 {
			creds = []string{"no credentials"}
		}
		mu.Lock()
		fmt.Fprintf(w, "upstream received %s %s [%s]\n", r.Method, r.URL.RequestURI(), strings.Join(creds, ", "))
		mu.Unlock()
		h.ServeHTTP(rw, r)
	})
}

// mask keeps a scheme word and the first four characters of a credential.
func mask(v string) string {
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok {
		scheme, rest = "", v
	} else {
		scheme += " "
	}
	if len(rest) > 4 {
		rest = rest[:4] + strings.Repeat("•", 8)
	} else {
		rest = strings.Repeat("•", 8)
	}
	return scheme + rest
}
