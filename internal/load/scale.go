package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/server"
)

// idleResult is what idle WebSocket connections cost the server.
type idleResult struct {
	N          int
	HeapPerKiB float64 // (HeapInuse + StackInuse) growth per connection, after GC
	RSSPerKiB  float64 // resident set growth per connection (0 where unknown)
}

// idleSockets opens n subscribed WebSockets that then say nothing, and
// measures the process's growth per connection. The clients are raw
// sockets with no goroutine or buffer of their own, so the growth is the
// server's (plus a TCP connection's small client-side struct).
func (e *env) idleSockets(ctx context.Context, s *seeded, n int) (idleResult, error) {
	res := idleResult{N: n}
	addr := strings.TrimPrefix(e.base, "http://")
	toks := make([]string, len(e.clients))
	for i, c := range e.clients {
		t, err := c.Token(ctx)
		if err != nil {
			return res, err
		}
		toks[i] = t
	}
	api := e.d.API()
	before := api.WebSockets()
	heap0, rss0 := memNow()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		for deadline := time.Now().Add(10 * time.Second); api.WebSockets() > before && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	hub := e.d.Engine().Hub()
	for i := range n {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		sc := &s.convs[i%len(s.convs)]
		member := sc.members[i%len(sc.members)]
		c, err := rawSocket(addr, toks[member], sc.id, hub.Last(sc.id), 0)
		if err != nil {
			return res, fmt.Errorf("idle socket %d: %w", i, err)
		}
		conns = append(conns, c)
	}
	for deadline := time.Now().Add(20 * time.Second); api.WebSockets() < before+n; {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("idle sockets: the server holds %d of %d", api.WebSockets()-before, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let each connection's first pass finish
	heap1, rss1 := memNow()
	res.HeapPerKiB = float64(heap1-heap0) / float64(n) / 1024
	if rss0 > 0 && rss1 > 0 {
		res.RSSPerKiB = float64(rss1-rss0) / float64(n) / 1024
	}
	return res, nil
}

// memNow returns HeapInuse+StackInuse after a full GC, and the resident
// set size (0 where /proc is not there).
func memNow() (int64, int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse), rssOf("self")
}

// rssOf reads VmRSS of a process from /proc, in bytes.
func rssOf(pid string) int64 {
	v, _ := procStatus(pid, "VmRSS")
	return v
}

func procStatus(pid, field string) (int64, bool) {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n * 1024, err == nil
		}
	}
	return 0, false
}

// smapsAnon reads the anonymous part of a process's resident set.
func smapsAnon(pid string) int64 {
	data, err := os.ReadFile("/proc/" + pid + "/smaps_rollup")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Anonymous:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// restartResult is a start of the server over a loaded data directory.
type restartResult struct {
	Took      time.Duration // start to "listening on"
	RSS       int64         // resident set once listening
	Anon      int64         // of which anonymous memory (heap, stacks); the rest is mapped files, the database mostly
	HWM       int64         // peak resident set during the start
	DBBytes   int64
	InProcess bool
}

// restart starts the server over dir and measures how long it takes to
// listen and how much memory it holds then. With exe, the server is a
// child process ('twokey serve'), so its memory is its own; without, it is
// started in this process and the heap growth is reported instead.
func restart(ctx context.Context, dir, exe string) (restartResult, error) {
	var res restartResult
	if fi, err := os.Stat(dir + "/twokey.db"); err == nil {
		res.DBBytes = fi.Size()
	}
	if exe == "" {
		res.InProcess = true
		heap0, _ := memNow()
		start := time.Now()
		cfg := config.Default()
		cfg.Addr, cfg.DataDir = "127.0.0.1:0", dir
		d, err := server.Start(cfg, server.Deps{Out: io.Discard, Logger: discardLogger(), LockTimeout: 5 * time.Second})
		if err != nil {
			return res, err
		}
		res.Took = time.Since(start)
		heap1, _ := memNow()
		res.RSS = heap1 - heap0
		return res, d.Close()
	}
	cmd := exec.Command(exe, "serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--log-level", "error")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TWOKEY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, out)
	}()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return res, fmt.Errorf("restart: the server exited before listening: %s", strings.TrimSpace(stderr.String()))
			}
			if !strings.HasPrefix(l, "listening on ") {
				continue
			}
			res.Took = time.Since(start)
			pid := strconv.Itoa(cmd.Process.Pid)
			res.RSS = rssOf(pid)
			res.HWM, _ = procStatus(pid, "VmHWM")
			res.Anon = smapsAnon(pid)
			go func() {
				for range lines {
				}
			}()
			return res, nil
		case <-timeout:
			return res, fmt.Errorf("restart: no 'listening on' within 60 s")
		case <-ctx.Done():
			return res, fmt.Errorf("restart: %w", ctx.Err())
		}
	}
}
