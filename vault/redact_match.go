package vault

import (
	"bytes"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// matcher finds every needle of a fixed set in a text in one pass, as an
// Aho-Corasick automaton over byte classes. Bytes that occur in no needle
// share one class; '+' and ' ' share one too, so that a space written as
// '+' (form encoding) matches wherever a needle has a space, and a needle's
// '+' wherever the text has a space (more is redacted, never less).
//
// States are numbered breadth first. The shallow ones (the first nd: the
// root and those a few bytes deep, where a scan of ordinary text spends
// nearly all its time) have a dense row of transitions; the deeper ones
// keep only their own edges (most have one), and a miss follows failure
// links to a dense state. Memory is linear in the needles' total length,
// plus a bounded table: a typical key costs some tens of KiB, an 8 KiB
// key a few MiB.
type matcher struct {
	class     [256]uint16
	nc        int32   // classes
	nd        int32   // dense states: 0 to nd-1
	dense     []int32 // dense[s*nc+c]: the state after class c from s < nd
	edgeStart []int32 // state s's edges are edgeStart[s]:edgeStart[s+1]
	edgeClass []uint16
	edgeNext  []int32
	fail      []int32
	out       []int32 // the length of the longest needle ending at the state, 0 for none
	maxLen    int
	// The scans skip text at the root quickly: pairs holds the class pairs
	// that start a needle, pairsEsc those and every pair with a '%' or a
	// '\' (where a decoded view reads an escape). Only when every
	// needle has two bytes or more (skip).
	pairs, pairsEsc bitset
	skip            bool
}

// bitset is a set of class pairs.
type bitset []uint64

func (b bitset) set(i int)      { b[i>>6] |= 1 << (i & 63) }
func (b bitset) has(i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }

// skip returns the first position from i on where text's byte and the next
// one form a pair of b, or the last position.
func (b bitset) skip(text []byte, i int, class *[256]uint16, nc int) int {
	if i+1 >= len(text) {
		return i
	}
	prev := int(class[text[i]]) * nc
	for _, c := range text[i+1:] {
		cur := int(class[c])
		if p := prev + cur; b[p>>6]&(1<<(p&63)) != 0 {
			return i
		}
		prev = cur * nc
		i++
	}
	return i
}

// Bounds of the dense table: states at most denseDepth bytes deep, and at
// most denseEntries transitions.
const (
	denseDepth   = 4
	denseEntries = 1 << 18
)

func newMatcher(needles [][]byte) *matcher {
	m := &matcher{}
	nc := uint16(1) // class 0: bytes in no needle
	for _, n := range needles {
		for _, c := range n {
			if c == '+' {
				c = ' '
			}
			if m.class[c] == 0 {
				m.class[c] = nc
				nc++
			}
		}
	}
	for _, c := range []byte{'%', '\\'} {
		if m.class[c] == 0 {
			m.class[c] = nc
			nc++
		}
	}
	m.class['+'] = m.class[' ']
	m.nc = int32(nc)
	m.pairs = make(bitset, (int(nc)*int(nc)+63)/64)
	m.pairsEsc = make(bitset, len(m.pairs))
	m.skip = true
	for _, n := range needles {
		if len(n) == 1 {
			m.skip = false
		}
		if len(n) >= 2 {
			i := int(m.class[n[0]])*int(nc) + int(m.class[n[1]])
			m.pairs.set(i)
			m.pairsEsc.set(i)
		}
	}
	for _, e := range []uint16{m.class['%'], m.class['\\']} {
		for c := 0; c < int(nc); c++ {
			m.pairsEsc.set(int(e)*int(nc) + c)
			m.pairsEsc.set(c*int(nc) + int(e))
		}
	}

	// The trie, as linked lists of children while it grows.
	type node struct {
		first, next int32 // first child, next sibling (0 = none)
		class       uint16
		depth       int32
		out         int32
	}
	nodes := []node{{}}
	for _, n := range needles {
		if len(n) == 0 {
			continue
		}
		s := int32(0)
		for _, b := range n {
			c := m.class[b]
			k := nodes[s].first
			for k != 0 && nodes[k].class != c {
				k = nodes[k].next
			}
			if k == 0 {
				k = int32(len(nodes))
				nodes = append(nodes, node{next: nodes[s].first, class: c, depth: nodes[s].depth + 1})
				nodes[s].first = k
			}
			s = k
		}
		nodes[s].out = int32(len(n))
		m.maxLen = max(m.maxLen, len(n))
	}

	// Number the states breadth first and flatten the edges.
	order := make([]int32, 1, len(nodes)) // new number -> trie node
	id := make([]int32, len(nodes))       // trie node -> new number
	for q := 0; q < len(order); q++ {
		for k := nodes[order[q]].first; k != 0; k = nodes[k].next {
			id[k] = int32(len(order))
			order = append(order, k)
		}
	}
	n := len(order)
	m.edgeStart = make([]int32, n+1)
	m.out = make([]int32, n)
	for s, old := range order {
		m.edgeStart[s] = int32(len(m.edgeNext))
		m.out[s] = nodes[old].out
		for k := nodes[old].first; k != 0; k = nodes[k].next {
			m.edgeClass = append(m.edgeClass, nodes[k].class)
			m.edgeNext = append(m.edgeNext, id[k])
		}
		if nodes[old].depth <= denseDepth && int(m.nd+1)*int(nc) <= denseEntries {
			m.nd = int32(s + 1)
		}
	}
	m.edgeStart[n] = int32(len(m.edgeNext))
	clear(nodes)
	clear(order)
	clear(id)

	// Failure links and dense rows, breadth first: a state's fail is the
	// longest proper suffix of its string that is in the trie, and every
	// state a row or a step needs has a smaller number than the state.
	m.fail = make([]int32, n)
	m.dense = make([]int32, int(m.nd)*int(nc))
	for s := int32(0); s < int32(n); s++ {
		if s < m.nd {
			row := m.dense[s*m.nc : (s+1)*m.nc]
			if s != 0 {
				copy(row, m.dense[m.fail[s]*m.nc:(m.fail[s]+1)*m.nc])
			}
			for e := m.edgeStart[s]; e < m.edgeStart[s+1]; e++ {
				row[m.edgeClass[e]] = m.edgeNext[e]
			}
		}
		for e := m.edgeStart[s]; e < m.edgeStart[s+1]; e++ {
			k := m.edgeNext[e]
			if s != 0 {
				m.fail[k] = m.step(m.fail[s], m.edgeClass[e])
			}
			m.out[k] = max(m.out[k], m.out[m.fail[k]])
		}
	}
	return m
}

// step is the automaton's transition from s on class c.
func (m *matcher) step(s int32, c uint16) int32 {
	for s >= m.nd {
		for e := m.edgeStart[s]; e < m.edgeStart[s+1]; e++ {
			if m.edgeClass[e] == c {
				return m.edgeNext[e]
			}
		}
		s = m.fail[s]
	}
	return m.dense[s*m.nc+int32(c)]
}

// wipe zeroes everything the matcher learned from its needles.
func (m *matcher) wipe() {
	clear(m.class[:])
	clear(m.dense)
	clear(m.edgeStart)
	clear(m.edgeClass)
	clear(m.edgeNext)
	clear(m.fail)
	clear(m.out)
	clear(m.pairs)
	clear(m.pairsEsc)
	m.maxLen = 0
}

// span is a part [start, end) of the text to replace.
type span struct{ start, end int }

// spans collects the matches of one view in the order they end and keeps
// them disjoint: a match that overlaps earlier ones absorbs them. Matches
// that only touch stay apart.
type spans []span

func (l *spans) add(start, end int) {
	s := *l
	for len(s) > 0 && s[len(s)-1].end > start {
		start = min(start, s[len(s)-1].start)
		s = s[:len(s)-1]
	}
	*l = append(s, span{start, end})
}

// scanPlain runs the automaton over b as it is.
func (m *matcher) scanPlain(b []byte, l *spans) {
	class, dense, out, nc, nd := &m.class, m.dense, m.out, m.nc, m.nd
	s := int32(0)
	for i := 0; i < len(b); i++ {
		if s == 0 && m.skip {
			// At the root a match can start only where a needle's first
			// two bytes are.
			i = m.pairs.skip(b, i, class, int(nc))
		}
		c := class[b[i]]
		if s < nd {
			s = dense[s*nc+int32(c)]
		} else {
			s = m.step(s, c)
		}
		if n := out[s]; n > 0 {
			l.add(i+1-int(n), i+1)
		}
	}
}

// view is one way of reading a text: its decoder, called only at a byte
// of esc (where its escapes start; every other byte reads as itself), and
// its progress through a scan.
type view struct {
	esc   *[256]bool
	dec   func(b []byte, i int, buf *[4]byte) (n, size int)
	s     int32 // the automaton's state
	next  int   // where the view's next token starts
	k     int   // bytes it has read
	ring  []int // ring[j&mask]: where the token of the j-th byte read starts
	found spans
	// A view that has read only plain bytes for as long as the longest
	// needle is in the plain scan's state and finds what it finds: it is
	// parked (not run) until its next escape, where it takes the plain
	// scan's state and positions. after is where its last escape ended.
	parked bool
	after  int
}

// scanViews runs the automaton over b as it is (into plain) and as each
// view reads it, in one pass. A view's match runs from the start of the
// token holding its first byte to the end of the token holding its last,
// so a whole escape is replaced, never half.
func (m *matcher) scanViews(b []byte, plain *spans, views []*view) {
	class, dense, out, nc, nd := &m.class, m.dense, m.out, m.nc, m.nd
	size := 1 << bitsFor(m.maxLen)
	mask := size - 1
	for _, v := range views {
		v.ring = make([]int, size)
	}
	var buf [4]byte
	sp := int32(0)
	for _, v := range views {
		v.parked = true // nothing read yet: the same as the plain scan
	}
	idle := func(i int) bool {
		for _, v := range views {
			if !v.parked && (v.s != 0 || v.next > i) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(b); i++ {
		if sp == 0 && m.skip && idle(i) {
			// Every view at the root or parked, no escape pending: a match
			// can start only at a needle's first two bytes or an escape.
			i = m.pairsEsc.skip(b, i, class, int(nc))
		}
		c := b[i]
		cl := class[c]
		before := sp
		if sp < nd {
			sp = dense[sp*nc+int32(cl)]
		} else {
			sp = m.step(sp, cl)
		}
		if o := out[sp]; o > 0 {
			plain.add(i+1-int(o), i+1)
		}
		for _, v := range views {
			if v.parked {
				if !v.esc[c] {
					continue
				}
				// Take over the plain scan's state and positions.
				v.parked, v.s, v.next = false, before, i
				for j := 1; j <= min(m.maxLen, i); j++ {
					v.ring[(v.k-j)&mask] = i - j
				}
			}
			if i < v.next {
				continue // inside the view's current escape
			}
			if !v.esc[c] {
				v.next = i + 1
				if i+1-v.after >= m.maxLen {
					v.parked = true
					continue
				}
				if v.s < nd {
					if v.s = dense[v.s*nc+int32(cl)]; v.s == 0 {
						continue // nothing can start before the next byte
					}
				} else {
					v.s = m.step(v.s, cl)
				}
				v.ring[v.k&mask] = i
				if o := int(out[v.s]); o > 0 {
					v.found.add(v.ring[(v.k+1-o)&mask], i+1)
				}
				v.k++
				continue
			}
			n, size := v.dec(b, i, &buf)
			v.next = i + size
			v.after = v.next
			for j := 0; j < n; j++ {
				v.ring[v.k&mask] = i
				v.s = m.step(v.s, class[buf[j]])
				if o := int(out[v.s]); o > 0 {
					v.found.add(v.ring[(v.k+1-o)&mask], v.next)
				}
				v.k++
			}
		}
	}
	clear(buf[:])
	for _, v := range views {
		clear(v.ring)
	}
}

// The bytes each view's escapes start with.
var escPercent, escJSON, escBoth = [256]bool{'%': true}, [256]bool{'\\': true}, [256]bool{'%': true, '\\': true}

// bitsFor returns the number of bits that hold n positions.
func bitsFor(n int) int {
	b := 0
	for 1<<b < n {
		b++
	}
	return b
}

// decodePercent reads %XX (either case) as its byte; anything else as
// itself. (A '+' needs no decoding: the classes fold it with the space.)
func decodePercent(b []byte, i int, buf *[4]byte) (int, int) {
	if b[i] == '%' && i+2 < len(b) {
		if hi, lo := unhex(b[i+1]), unhex(b[i+2]); hi >= 0 && lo >= 0 {
			buf[0] = byte(hi<<4 | lo)
			return 1, 3
		}
	}
	buf[0] = b[i]
	return 1, 1
}

// decodeJSON reads a JSON string escape as what it stands for: \" \\ \/
// \b \f \n \r \t, and \uXXXX (either case; a surrogate pair as one rune, a
// lone surrogate as U+FFFD as encoding/json reads it) as UTF-8. Anything
// else, a backslash that starts no escape included, reads as itself.
func decodeJSON(b []byte, i int, buf *[4]byte) (int, int) {
	c := b[i]
	if c != '\\' || i+1 >= len(b) {
		buf[0] = c
		return 1, 1
	}
	switch e := b[i+1]; e {
	case '"', '\\', '/':
		buf[0] = e
		return 1, 2
	case 'b':
		buf[0] = '\b'
		return 1, 2
	case 'f':
		buf[0] = '\f'
		return 1, 2
	case 'n':
		buf[0] = '\n'
		return 1, 2
	case 'r':
		buf[0] = '\r'
		return 1, 2
	case 't':
		buf[0] = '\t'
		return 1, 2
	case 'u':
		r, ok := hex4(b, i+2)
		if !ok {
			break
		}
		size := 6
		if utf16.IsSurrogate(r) {
			r2, ok := hex4(b, i+8)
			if ok && b[i+6] == '\\' && b[i+7] == 'u' && utf16.DecodeRune(r, r2) != utf8.RuneError {
				r, size = utf16.DecodeRune(r, r2), 12
			} else {
				r = utf8.RuneError
			}
		}
		return utf8.EncodeRune(buf[:], r), size
	}
	buf[0] = c
	return 1, 1
}

// decodeJSONPercent reads JSON escapes, then percent-encoding in what they
// give: a URL-encoded value inside a JSON string that escapes '/' as \/.
func decodeJSONPercent(b []byte, i int, buf *[4]byte) (int, int) {
	n, size := decodeJSON(b, i, buf)
	if n != 1 || buf[0] != '%' || i+size >= len(b) {
		return n, size
	}
	var d [4]byte
	n1, s1 := decodeJSON(b, i+size, &d)
	hi := unhex(d[0])
	if n1 != 1 || hi < 0 || i+size+s1 >= len(b) {
		return n, size
	}
	n2, s2 := decodeJSON(b, i+size+s1, &d)
	lo := unhex(d[0])
	if n2 != 1 || lo < 0 {
		return n, size
	}
	buf[0] = byte(hi<<4 | lo)
	return 1, size + s1 + s2
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		d := unhex(c)
		if d < 0 {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// find returns the disjoint spans of b to replace, sorted: every needle
// as is, percent-decoded (when b has a '%'), JSON-unescaped (when it has a
// '\'), and JSON-unescaped then percent-decoded (when it has both, or a
// JSON-escaped '%'); overlapping matches of different views are one span.
// Each view reads its escapes wherever they start, so one alone could miss
// a key another finds: a '%' just before a JSON-escaped key that starts
// with two hex digits joins them into one escape in the last view, and the
// JSON view finds the key.
func (m *matcher) find(b []byte) []span {
	var plain spans
	pct, json := bytes.IndexByte(b, '%') >= 0, bytes.IndexByte(b, '\\') >= 0
	if !pct && !json {
		m.scanPlain(b, &plain)
		return plain
	}
	var views []*view
	if pct {
		views = append(views, &view{esc: &escPercent, dec: decodePercent})
	}
	if json {
		views = append(views, &view{esc: &escJSON, dec: decodeJSON})
		if pct || bytes.Contains(b, []byte(`\u0025`)) {
			views = append(views, &view{esc: &escBoth, dec: decodeJSONPercent})
		}
	}
	m.scanViews(b, &plain, views)
	all := plain
	for _, v := range views {
		all = append(all, v.found...)
	}
	if len(all) == len(plain) {
		return plain
	}
	slices.SortFunc(all, func(x, y span) int { return x.start - y.start })
	merged := all[:0]
	for _, s := range all {
		if k := len(merged) - 1; k >= 0 && merged[k].end > s.start {
			merged[k].end = max(merged[k].end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}
