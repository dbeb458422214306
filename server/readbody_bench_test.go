package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/twokey/twokey"
)

// BenchmarkReadBody is reading one posted envelope's body (an approval is
// about 700 bytes): "before" is io.ReadAll, "after" readAll with the
// request's Content-Length.
func BenchmarkReadBody(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 700)
	for _, bc := range []struct {
		name string
		read func(io.Reader, int64) ([]byte, error)
	}{
		{"before", func(r io.Reader, _ int64) ([]byte, error) { return io.ReadAll(r) }},
		{"after", readAll},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := bc.read(bytes.NewReader(body), int64(len(body)))
				if err != nil || len(got) != len(body) {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestReadAllMatchesReadAll: whatever length a request declares, readAll
// reads what io.ReadAll reads and fails as it fails, the envelope limit
// included.
func TestReadAllMatchesReadAll(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 513, 700, twokey.MaxEnvelopeBytes, twokey.MaxEnvelopeBytes + 1, 3 * twokey.MaxEnvelopeBytes} {
		body := strings.Repeat("y", n)
		for _, declared := range []int64{-1, 0, int64(n), int64(n) - 1, int64(n) + 1, 10, twokey.MaxEnvelopeBytes, twokey.MaxEnvelopeBytes + 1} {
			for _, half := range []bool{false, true} {
				reader := func() io.Reader {
					w := httptest.NewRecorder()
					var r io.Reader = strings.NewReader(body)
					if half {
						r = iotest.HalfReader(r)
					}
					return http.MaxBytesReader(w, io.NopCloser(r), twokey.MaxEnvelopeBytes)
				}
				want, werr := io.ReadAll(reader())
				got, gerr := readAll(reader(), declared)
				var wm, gm *http.MaxBytesError
				if !bytes.Equal(got, want) || (werr == nil) != (gerr == nil) || errors.As(werr, &wm) != errors.As(gerr, &gm) {
					t.Fatalf("n=%d declared=%d half=%v: %d bytes %v, io.ReadAll %d bytes %v", n, declared, half, len(got), gerr, len(want), werr)
				}
			}
		}
	}
}
