package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/notify"
)

// newWebhooksListenCmd is 'twokey webhooks listen': a receiver on this
// machine that checks each notification's signature and prints what it
// says, to try a target before pointing it at a real receiver.
func newWebhooksListenCmd(f *factory) *cobra.Command {
	var addr, secretFile string
	var count int
	var tolerance time.Duration
	cmd := &cobra.Command{
		Use:   "listen",
		Short: "Receive notifications here, check their signatures and print them",
		Long: `Listen for webhook notifications (format json) on ADDR and, for each one,
check its Standard Webhooks signature with the target's secret, answer 2xx
when it is valid (401 when not, so the gateway retries), and print one line:
the event, the conversation, the request and its approvals, and the link.

The secret is read from TWOKEY_WEBHOOK_SECRET or from --secret-file, never
from the command line (a process listing would show it). The file is read
again for each notification, so it may be written after the listener
started (until then notifications are answered 503 and retried) and a
rotated secret takes effect at once. Stop with Ctrl-C, or after --count
notifications.`,
		Example: `  TWOKEY_WEBHOOK_SECRET=whsec_... twokey webhooks listen --addr 127.0.0.1:9000
  twokey webhooks add local http://127.0.0.1:9000/ --conversation ops
  twokey webhooks listen --secret-file hook.secret --count 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := strings.TrimSpace(f.getenv("TWOKEY_WEBHOOK_SECRET"))
			if env == "" && secretFile == "" {
				return usagef("give the target's secret (whsec_..., shown when it was made): TWOKEY_WEBHOOK_SECRET or --secret-file")
			}
			if secretFile == "" && !strings.HasPrefix(env, "whsec_") {
				return usagef("the secret starts with whsec_ (as 'twokey webhooks add' and 'rotate' print it)")
			}
			if count < 0 {
				return usagef("--count must be 0 (no end) or a number of notifications")
			}
			secret := func() (string, error) {
				if secretFile == "" {
					return env, nil
				}
				b, err := os.ReadFile(secretFile)
				if err != nil {
					return "", err
				}
				s := strings.TrimSpace(string(b))
				if !strings.HasPrefix(s, "whsec_") {
					return "", fmt.Errorf("%s does not hold a whsec_ secret", secretFile)
				}
				return s, nil
			}
			return listenWebhooks(f.ctx, f.io.Out, addr, secret, count, tolerance)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", "127.0.0.1:9000", "address to listen on (port 0 takes a free one)")
	fl.StringVar(&secretFile, "secret-file", "", "file holding the target's whsec_ secret (default: TWOKEY_WEBHOOK_SECRET)")
	fl.IntVar(&count, "count", 0, "stop after this many valid notifications (0: run until stopped)")
	fl.DurationVar(&tolerance, "tolerance", 5*time.Minute, "how far webhook-timestamp may be from this machine's clock")
	return cmd
}

// listenWebhooks serves until ctx ends or count valid notifications came.
// secret gives the secret to check each notification with.
func listenWebhooks(ctx context.Context, out io.Writer, addr string, secret func() (string, error), count int, tolerance time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	valid := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		key, err := secret()
		if err != nil {
			fmt.Fprintf(out, "… not checked yet %s: %v\n", r.Header.Get(notify.HeaderID), err)
			http.Error(w, "no secret to check with yet", http.StatusServiceUnavailable)
			return
		}
		if err := notify.Verify(key, r.Header, body, time.Now(), tolerance); err != nil {
			fmt.Fprintf(out, "✗ refused %s: %v\n", r.Header.Get(notify.HeaderID), err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(out, "✓ signature valid  %s\n", describeEvent(body))
		w.WriteHeader(http.StatusNoContent)
		if valid++; count > 0 && valid >= count {
			cancel()
		}
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "listening on http://%s/\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-done:
		return err
	}
	shut, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// describeEvent is one line of what a json notification says.
func describeEvent(body []byte) string {
	var ev notify.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.Type == "" {
		return "(not a twokey event)"
	}
	d := ev.Data
	parts := []string{ev.Type, "in " + nameOrID(d.Conversation.Name, d.Conversation.ID)}
	if r := d.Request; r != nil {
		what := r.Template
		if what == "" {
			what = r.Method + " " + r.Service
		}
		parts = append(parts, fmt.Sprintf("request %s (%s) %d/%d", shortID(r.ID), what, r.K, r.M))
		if len(r.WaitingOn) > 0 {
			parts = append(parts, "waiting on "+strings.Join(r.WaitingOn, ", "))
		}
		if r.Reason != "" {
			parts = append(parts, "reason "+r.Reason)
		}
	}
	if d.By != "" {
		parts = append(parts, "by "+d.By)
	}
	if d.Message != "" {
		parts = append(parts, d.Message)
	}
	if d.Link != "" {
		parts = append(parts, d.Link)
	}
	return strings.Join(parts, "  ")
}

func nameOrID(name, id string) string {
	if name != "" {
		return name
	}
	return id
}
