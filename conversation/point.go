package conversation

import (
	"bytes"
	"encoding/hex"
)

// smallOrderY holds the y coordinates, little-endian, of the eight points of
// small order on the Ed25519 curve (the identity; y = -1, of order 2; y = 0,
// of order 4; two y values of order 8, each with two x), as in libsodium's
// ge25519_has_small_order. The tests derive each from the curve equation.
var smallOrderY = [][]byte{
	mustHexLE("0000000000000000000000000000000000000000000000000000000000000000"), // y = 0
	mustHexLE("0100000000000000000000000000000000000000000000000000000000000000"), // y = 1
	mustHexLE("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), // y = p-1
	mustHexLE("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
	mustHexLE("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
}

func mustHexLE(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		panic("bad constant " + s)
	}
	return b
}

// usableKey reports whether pub may be a key id: 32 bytes whose y is below
// p = 2^255 - 19 (one spelling per point) and not a point of small order.
//
// crypto/ed25519 verifies against any encoding that decodes to a point, and
// for a point of small order a signature can be forged without any private
// key: with the identity (32 bytes 0x01 0x00...) as the key, R = identity
// and S = 0 verify over every message; with the all-zero key, the all-zero
// signature verifies over a quarter of all messages. Bytes that are no point
// at all are left to Verify, which refuses every signature for them.
// Mixed-order keys are left alone too: a signature for one needs the
// private key of its prime-order part.
func usableKey(pub []byte) bool {
	if len(pub) != 32 {
		return false
	}
	var y [32]byte
	copy(y[:], pub)
	y[31] &= 0x7f // the sign bit of x
	if y[0] >= 0xed && y[31] == 0x7f && bytes.Count(y[1:31], []byte{0xff}) == 30 {
		return false // y >= p: a second spelling of y - p
	}
	for _, s := range smallOrderY {
		if bytes.Equal(y[:], s) {
			return false
		}
	}
	return true
}
