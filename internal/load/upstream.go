package load

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// upstream is a loopback HTTP server standing in for an API: it answers
// every call at once and records when each arrived, keyed by the last
// segment of its path (the load tool puts the request id there).
type upstream struct {
	srv *http.Server
	ln  net.Listener
	url string

	mu      sync.Mutex
	arrived map[string]time.Time
}

func startUpstream() (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{ln: ln, url: "http://" + ln.Addr().String(), arrived: map[string]time.Time{}}
	u.srv = &http.Server{Handler: http.HandlerFunc(u.serve), ReadHeaderTimeout: 10 * time.Second}
	go u.srv.Serve(ln)
	return u, nil
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	id := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	u.mu.Lock()
	u.arrived[id] = at
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"ok":true}`))
}

// at returns when the call for id arrived.
func (u *upstream) at(id string) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	t, ok := u.arrived[id]
	return t, ok
}

func (u *upstream) close() { u.srv.Close() }
