package termtext

import (
	"bytes"
	"strings"
	"testing"
)

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain text\nline two\tx": "plain text\nline two\tx",
		"\x1b[2J\x1b[31mred":      "\ufffd[2J\ufffd[31mred",
		"a\rb":                    "a\ufffdb",
		"csi \u009b1m":            "csi \ufffd1m",
		"url\u202egnp.exe":        "url\ufffdgnp.exe",
		"bad \xff byte":           "bad \ufffd byte",
		"bell\a":                  "bell\ufffd",
		"ünïcödé ✓":               "ünïcödé ✓",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Line("one\n#17 gateway EXECUTED"); strings.Contains(got, "\n") {
		t.Errorf("Line kept a newline: %q", got)
	}
}

// A rune split across writes arrives whole; escape bytes never pass.
func TestWriterSplitsAndEscapes(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	in := []byte("héllo ✓ \x1b[31m end\n")
	for i := range in {
		if n, err := w.Write(in[i : i+1]); err != nil || n != 1 {
			t.Fatalf("write %d: n=%d err=%v", i, n, err)
		}
	}
	if got, want := out.String(), "héllo ✓ \ufffd[31m end\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func FuzzWriter(f *testing.F) {
	f.Add([]byte("a\x1b[2Jb\u202e\xe2\x9c"), 3)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		var out bytes.Buffer
		w := NewWriter(&out)
		if split < 0 || split > len(data) {
			split = len(data) / 2
		}
		w.Write(data[:split])
		w.Write(data[split:])
		for _, r := range out.String() {
			if Unsafe(r) && r != '\ufffd' {
				t.Fatalf("unsafe rune %U in output %q", r, out.String())
			}
		}
		if bytes.ContainsAny(out.Bytes(), "\x1b\r\x07") {
			t.Fatalf("control byte in output %q", out.String())
		}
	})
}

// A rune cut off at the end is shown as U+FFFD by Flush, not dropped.
func TestFlushShowsACutRune(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	w.Write([]byte("ok \xe2\x9c"))
	if out.String() != "ok " {
		t.Fatalf("before flush: %q", out.String())
	}
	w.Flush()
	if out.String() != "ok \ufffd" {
		t.Fatalf("after flush: %q", out.String())
	}
}
