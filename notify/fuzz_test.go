package notify

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// FuzzDecodeEntry: whatever the outbox or the history holds (a damaged
// file, an older version) never panics the loader, and what decodes
// encodes back to an entry that decodes the same.
func FuzzDecodeEntry(f *testing.F) {
	good, _ := json.Marshal(&entry{V: entryVersion, Target: "ops", Order: 7, Key: "r/c/r",
		Event: Event{Type: RequestCreated, Version: 1, ID: "msg_x", Data: Data{Request: &Request{ID: "r"}}}})
	f.Add("ops/0000000000000007", good)
	f.Add("ops/0000000000000008", good)
	f.Add("ops/xyz", []byte(`{}`))
	f.Add("/0000000000000007", []byte(`{"v":1}`))
	f.Add("ops/0000000000000001", []byte(`{"id":"msg_1","target":"ops","state":"dead","event":"request.created"}`))
	f.Add("ops/ffffffffffffffff", []byte(`{"v":1,"target":"ops","order":18446744073709551615,"attempts":-1,"event":{"id":"msg_","type":"x"}}`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		if e, err := decodeEntry(key, value); err == nil {
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			again, err := decodeEntry(key, b)
			if err != nil || again.Event.ID != e.Event.ID || again.Order != e.Order {
				t.Fatalf("re-encoded entry: %+v, %v", again, err)
			}
			_ = e.delivery("queued")
		}
		_, _, _ = decodeDelivery(key, value)
	})
}

// FuzzVerify: a receiver's Verify never panics on what a sender puts in
// the headers, and accepts only the signature Sign makes.
func FuzzVerify(f *testing.F) {
	f.Add(specID, "1614265330", specSig, []byte(specBody))
	f.Add(specID, "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,", []byte(specBody))
	f.Add("x", "-99999999999999999999", "v2,abc v1", []byte{})
	f.Add("msg", "1614265330", ",,, v1,!!!", []byte("{}"))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		now := time.Unix(specTS, 0)
		err := Verify(specSecret, h, body, now, 5*time.Minute)
		if err == nil {
			want, _ := Sign(specSecret, h.Get(HeaderID), specTS, body)
			if h.Get(HeaderTimestamp) == "" || want == "" {
				t.Fatal("accepted without a timestamp")
			}
		}
	})
}
