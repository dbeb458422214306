package conversation

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twokey/twokey"
)

func TestParseKeyIDRoundTrip(t *testing.T) {
	for i := range 200 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id := KeyID(pub)
		if len(id) != KeyIDLen {
			t.Fatalf("KeyID is %d chars", len(id))
		}
		got, err := ParseKeyID(id)
		wantCode(t, err)
		if !got.Equal(pub) || KeyID(got) != id {
			t.Fatalf("key %d: round trip %x -> %s -> %x", i, pub, id, got)
		}
	}
}

func TestParseKeyIDRefuses(t *testing.T) {
	good := alice.KeyID()
	urlID := keyWithURLChars(t).KeyID()
	tests := []struct{ name, id string }{
		{"empty", ""},
		{"padded", good + "="},
		{"42 chars", good[:42]},
		{"44 chars", good + "A"},
		{"standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(urlID)},
		{"spare bits set", setSpareBits(good)},
		{"line break inside", good[:10] + "\n" + good[11:]},
		{"space inside", good[:10] + " " + good[11:]},
		{"hex of the key", hex.EncodeToString(alice.Public())},
		{"standard base64 with padding", base64.StdEncoding.EncodeToString(alice.Public())},
		{"non-ASCII", good[:41] + "é"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.id == good || tt.id == urlID {
				t.Fatalf("test id %q is the canonical one", tt.id)
			}
			_, err := ParseKeyID(tt.id)
			wantCode(t, err, twokey.EBadEnvelope)
		})
	}
}

// leKey writes y (and the sign bit of x) as a 32-byte point encoding.
func leKey(y *big.Int, sign bool) []byte {
	be := make([]byte, 32)
	y.FillBytes(be)
	out := make([]byte, 32)
	for i := range be {
		out[31-i] = be[i]
	}
	if sign {
		out[31] |= 0x80
	}
	return out
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestParseKeyIDRefusesSmallOrderKeys: with a key of small order, a
// signature verifies without any private key (crypto/ed25519 does not check
// the key's order), so such a key is never a valid key id.
func TestParseKeyIDRefusesSmallOrderKeys(t *testing.T) {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	pMinus1 := new(big.Int).Sub(p, big.NewInt(1))
	// The y coordinates of the points of small order, as in libsodium's
	// blocklist (ed25519_ref10.c, ge25519_has_small_order).
	order8a := new(big.Int).SetBytes(reverse(mustHex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")))
	order8b := new(big.Int).SetBytes(reverse(mustHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")))
	canonical := []struct {
		name string
		y    *big.Int
	}{
		{"identity (order 1)", big.NewInt(1)},
		{"y=-1 (order 2)", pMinus1},
		{"y=0 (order 4)", big.NewInt(0)},
		{"order 8, a", order8a},
		{"order 8, b", order8b},
	}
	zeroS := make([]byte, 32)
	identity := leKey(big.NewInt(1), false)
	for _, c := range canonical {
		for _, sign := range []bool{false, true} {
			key := leKey(c.y, sign)
			t.Run(fmt.Sprintf("%s sign=%v", c.name, sign), func(t *testing.T) {
				_, err := ParseKeyID(KeyID(key))
				wantCode(t, err, twokey.EBadEnvelope)
				if sign && (c.y.Cmp(big.NewInt(1)) == 0 || c.y.Cmp(pMinus1) == 0) {
					return // x = 0: the sign bit makes a non-point spelling
				}
				// The danger, shown with crypto/ed25519 itself: R = identity,
				// S = 0 verifies for every message whose hash k is a multiple
				// of the key's order, without a private key.
				forged := 0
				for i := range 64 {
					if ed25519.Verify(key, []byte{byte(i)}, append(append([]byte(nil), identity...), zeroS...)) {
						forged++
					}
				}
				if forged == 0 {
					t.Fatalf("no forgery verified for %x: is it really of small order?", key)
				}
			})
		}
	}
	// Non-canonical spellings: y >= p.
	for _, y := range []*big.Int{p, new(big.Int).Add(p, big.NewInt(1)), new(big.Int).Add(p, big.NewInt(18))} {
		for _, sign := range []bool{false, true} {
			_, err := ParseKeyID(KeyID(leKey(y, sign)))
			if twokey.ErrorCode(err) != twokey.EBadEnvelope {
				t.Errorf("y = p+%s sign %v: %v", new(big.Int).Sub(y, p), sign, err)
			}
		}
	}
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

// Test-only curve arithmetic, independent of usableKey's table: RFC 8032
// 5.1.3 point decoding and the complete doubling law of -x^2 + y^2 = 1 +
// d x^2 y^2, with math/big.
var (
	curveP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	curveD = new(big.Int).Mod(new(big.Int).Mul(big.NewInt(-121665), new(big.Int).ModInverse(big.NewInt(121666), curveP)), curveP)
)

func decodePoint(pub []byte) (x, y *big.Int, ok bool) {
	sign := uint(pub[31] >> 7)
	b := reverse(pub)
	b[0] &= 0x7f
	y = new(big.Int).SetBytes(b)
	if y.Cmp(curveP) >= 0 {
		return nil, nil, false
	}
	yy := new(big.Int).Mul(y, y)
	u := new(big.Int).Sub(yy, big.NewInt(1))
	v := new(big.Int).Add(new(big.Int).Mul(curveD, yy), big.NewInt(1))
	x2 := new(big.Int).Mul(u, new(big.Int).ModInverse(v.Mod(v, curveP), curveP))
	x = new(big.Int).ModSqrt(x2.Mod(x2, curveP), curveP)
	if x == nil || (x.Sign() == 0 && sign == 1) {
		return nil, nil, false
	}
	if x.Bit(0) != sign {
		x.Sub(curveP, x)
	}
	return x, y, true
}

func doublePoint(x, y *big.Int) (*big.Int, *big.Int) {
	mod := func(v *big.Int) *big.Int { return v.Mod(v, curveP) }
	inv := func(v *big.Int) *big.Int { return new(big.Int).ModInverse(mod(v), curveP) }
	xx, yy := new(big.Int).Mul(x, x), new(big.Int).Mul(y, y)
	t := mod(new(big.Int).Mul(curveD, mod(new(big.Int).Mul(xx, yy))))
	nx := new(big.Int).Lsh(new(big.Int).Mul(x, y), 1)
	nx = mod(nx.Mul(nx, inv(new(big.Int).Add(big.NewInt(1), t))))
	ny := new(big.Int).Add(xx, yy)
	ny = mod(ny.Mul(ny, inv(new(big.Int).Sub(big.NewInt(1), t))))
	return nx, ny
}

// orderDividing8 returns the smallest n in 1, 2, 4, 8 with [n]P = identity,
// or 0 when P's order does not divide 8.
func orderDividing8(x, y *big.Int) int {
	for n := 1; n <= 8; n *= 2 {
		if x.Sign() == 0 && y.Cmp(big.NewInt(1)) == 0 {
			return n
		}
		x, y = doublePoint(x, y)
	}
	return 0
}

// TestSmallOrderTable derives usableKey's table from the curve: every entry
// decodes to points of order dividing 8, and together they are all eight
// points of the (cyclic, order 8) torsion group.
func TestSmallOrderTable(t *testing.T) {
	points := map[string]int{}
	for _, y := range smallOrderY {
		for _, sign := range []byte{0, 0x80} {
			enc := append([]byte(nil), y...)
			enc[31] |= sign
			x, py, ok := decodePoint(enc)
			if !ok {
				continue
			}
			n := orderDividing8(x, py)
			if n == 0 {
				t.Fatalf("%x is not of small order", enc)
			}
			points[x.String()+","+py.String()] = n
		}
	}
	orders := map[int]int{}
	for _, n := range points {
		orders[n]++
	}
	if len(points) != 8 || orders[1] != 1 || orders[2] != 1 || orders[4] != 2 || orders[8] != 4 {
		t.Fatalf("table covers %d points with orders %v; want 8 points: 1 of order 1, 1 of 2, 2 of 4, 4 of 8", len(points), orders)
	}
}

// TestUsableKeyAgreesWithCurve: for canonical encodings of points,
// usableKey is false exactly for points of small order; every y >= p is
// refused; real keys are always accepted.
func TestUsableKeyAgreesWithCurve(t *testing.T) {
	check := func(enc []byte) {
		t.Helper()
		x, y, ok := decodePoint(enc)
		if !ok {
			return // not a point: Verify refuses every signature for it
		}
		want := orderDividing8(x, y) == 0
		if got := usableKey(enc); got != want {
			t.Errorf("usableKey(%x) = %v, want %v", enc, got, want)
		}
	}
	for _, y := range smallOrderY {
		for _, sign := range []byte{0, 0x80} {
			enc := append([]byte(nil), y...)
			enc[31] |= sign
			check(enc)
			if usableKey(enc) {
				t.Errorf("small-order y %x accepted", enc)
			}
		}
	}
	for y := range int64(300) {
		for _, sign := range []bool{false, true} {
			check(leKey(big.NewInt(y), sign))
			// y + p: the same y, spelled otherwise (fits below 2^255 when y < 19).
			if y < 19 {
				if enc := leKey(new(big.Int).Add(curveP, big.NewInt(y)), sign); usableKey(enc) {
					t.Errorf("non-canonical y = p+%d accepted: %x", y, enc)
				}
			}
		}
	}
	for range 300 {
		var b [32]byte
		rand.Read(b[:])
		check(b[:])
	}
	for range 300 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		if !usableKey(pub) {
			t.Fatalf("real key %x refused", pub)
		}
	}
	if usableKey(make([]byte, 31)) {
		t.Fatal("31 bytes accepted")
	}
	// The largest canonical y, p-1, is of small order; p-2 is an ordinary
	// canonical y (usable if a point), so the y >= p test must let it by.
	if enc := leKey(new(big.Int).Sub(curveP, big.NewInt(2)), false); !usableKey(enc) {
		t.Errorf("y = p-2 refused as non-canonical")
	}
}

func BenchmarkParseKeyID(b *testing.B) {
	id := alice.KeyID()
	for b.Loop() {
		if _, err := ParseKeyID(id); err != nil {
			b.Fatal(err)
		}
	}
}

func TestIdentitySaveLoad(t *testing.T) {
	dir := t.TempDir()
	id, err := NewIdentity("alice")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sub", "alice.json")
	if err := id.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode %o, want 600", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("identity directory mode %o", st.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	other, _ := NewIdentity("mallory")
	if err := other.Save(path); err == nil {
		t.Fatal("Save overwrote an identity file")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a refused Save changed the file")
	}
	got, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "alice" || !got.Private.Equal(id.Private) || got.KeyID() != id.KeyID() {
		t.Fatalf("loaded %q %s, want alice %s", got.Name, got.KeyID(), id.KeyID())
	}
}

// versioned is an identity file whose version field is v (which may be
// empty, for none).
func versioned(v, keyID, seed string) []byte {
	return []byte(`{` + v + `"name": "x", "key_id": "` + keyID + `", "seed": "` + seed + `"}`)
}

func TestLoadIdentityRefuses(t *testing.T) {
	id := fixedIdentity(5)
	file := func(keyID, seed string) []byte {
		b, _ := json.Marshal(map[string]any{"version": 1, "name": "x", "key_id": keyID, "seed": seed})
		return b
	}
	seed := base64.StdEncoding.EncodeToString(id.Private.Seed())
	tests := []struct {
		name    string
		data    []byte
		mode    os.FileMode
		message string // the point of the message, when it is the point
	}{
		{"readable by others", file(id.KeyID(), seed), 0o644, "chmod 600"},
		{"readable by the group", file(id.KeyID(), seed), 0o640, "chmod 600"},
		{"key_id of another key", file(bob.KeyID(), seed), 0o600, "corrupt"},
		{"key_id one character off", file(setSpareBits(id.KeyID()), seed), 0o600, "corrupt"},
		{"seed missing", file(id.KeyID(), ""), 0o600, "seed"},
		{"seed short", file(id.KeyID(), base64.StdEncoding.EncodeToString(make([]byte, 31))), 0o600, "seed"},
		{"not JSON", []byte("seed=abc"), 0o600, "not valid"},
		// A format this twokey does not know is refused, not read as if
		// it were version 1.
		{"a newer version", versioned(`"version": 2, `, id.KeyID(), seed), 0o600, "has version 2; this twokey reads version 1 identity files"},
		{"no version", versioned("", id.KeyID(), seed), 0o600, "has no version; this twokey reads version 1 identity files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "id.json")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadIdentity(path)
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("message %q should say %q", err, tt.message)
			}
		})
	}
	// The control: the same file with mode 0600 loads.
	path := filepath.Join(t.TempDir(), "id.json")
	if err := os.WriteFile(path, file(id.KeyID(), seed), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadIdentity(path); err != nil || got.KeyID() != id.KeyID() {
		t.Fatalf("good file: %v", err)
	}
	if _, err := LoadIdentity(filepath.Join(t.TempDir(), "none.json")); err == nil || !strings.Contains(err.Error(), "twokey id new") {
		t.Fatalf("missing file: %v", err)
	}
}
