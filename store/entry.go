package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// An entry is one commit's part of the log, the value of one key of the
// records bucket (the key: the entry's number, big-endian, so that entries
// are appended in key order and a batch dirties neighbouring pages):
//
//	byte      version (1)
//	uvarint   len(conv), conv
//	uvarint   seq of the first record
//	uvarint   n; n times: uvarint len(record JSON), record JSON
//	uvarint   d; d times: uvarint len(bucket), bucket, uvarint len(key),
//	          key, byte 1 and uvarint len(value), value (a put) or byte 0
//	          (a delete)
//
// The derived puts are the state that follows from the records; they are
// replayed from the entries after the last checkpoint when the file opens.
const entryVersion = 1

type entry struct {
	conv    string
	first   uint64
	count   int      // how many records
	records [][]byte // their JSON, when decoded with records
	derived []Put
}

func encodeEntry(conv string, first uint64, records [][]byte, derived []Put) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + len(conv)
	for _, r := range records {
		n += binary.MaxVarintLen64 + len(r)
	}
	for _, p := range derived {
		n += 3*binary.MaxVarintLen64 + 1 + len(p.Bucket) + len(p.Key) + len(p.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, entryVersion)
	b = appendBytes(b, []byte(conv))
	b = binary.AppendUvarint(b, first)
	b = binary.AppendUvarint(b, uint64(len(records)))
	for _, r := range records {
		b = appendBytes(b, r)
	}
	b = binary.AppendUvarint(b, uint64(len(derived)))
	for _, p := range derived {
		b = appendBytes(b, []byte(p.Bucket))
		b = appendBytes(b, []byte(p.Key))
		if p.Value == nil {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = appendBytes(b, p.Value)
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

var errEntry = errors.New("malformed log entry")

// decodeEntry reads an entry; with records false it skips the records'
// bytes without copying them. The slices it returns alias v.
func decodeEntry(v []byte, records bool) (entry, error) {
	var e entry
	d := decoder{b: v}
	if ver := d.byte(); d.err || ver != entryVersion {
		return e, fmt.Errorf("%w: version %d", errEntry, ver)
	}
	e.conv = string(d.bytes())
	e.first = d.uvarint()
	n := d.uvarint()
	if n > uint64(len(v)) {
		return e, errEntry
	}
	e.count = int(n)
	if records {
		e.records = make([][]byte, 0, n)
	}
	for range n {
		r := d.bytes()
		if records {
			e.records = append(e.records, r)
		}
	}
	nd := d.uvarint()
	if nd > uint64(len(v)) {
		return e, errEntry
	}
	for range nd {
		p := Put{Bucket: string(d.bytes()), Key: string(d.bytes())}
		if d.byte() == 1 {
			p.Value = d.bytes()
			if p.Value == nil {
				p.Value = []byte{}
			}
		}
		e.derived = append(e.derived, p)
	}
	if d.err || len(d.b) != 0 {
		return e, errEntry
	}
	return e, nil
}

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	n, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		d.b = nil
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
