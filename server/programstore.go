package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/twokey/twokey/programs"
	"github.com/twokey/twokey/store"
)

// programStore keeps program keys (their hashes, policy and monthly
// count; never a key) in the store's programs bucket, by name.
type programStore struct{ st store.Store }

var _ programs.Persister = programStore{}

func (s programStore) Save(p *programs.Program) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.st.Put(store.Programs, p.Name, b)
}

func (s programStore) Delete(name string) error {
	return s.st.Commit(&store.Write{Puts: []store.Put{{Bucket: store.Programs, Key: name}}})
}

func loadPrograms(st store.Store) ([]*programs.Program, error) {
	var out []*programs.Program
	err := st.ForEach(store.Programs, func(k string, v []byte) error {
		var p programs.Program
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("program key %s: corrupt record: %w", k, err)
		}
		out = append(out, &p)
		return nil
	})
	return out, err
}

// banStore keeps the management API's failure counts and blocks in the
// store's bans bucket, so a block survives a restart: "client/NAME" for
// each client (loopback, an IPv4 address, an IPv6 /64) and "global" for
// when each wrong key of the global budget's window was checked.
type banStore struct{ st store.Store }

var _ banPersister = banStore{}

const (
	banClientPrefix = "client/"
	banGlobal       = "global"
)

type banGlobalRecord struct {
	Failures []time.Time `json:"failures"`
}

func (s banStore) loadBans() (map[string]banRecord, []time.Time, error) {
	clients := map[string]banRecord{}
	var global []time.Time
	err := s.st.ForEach(store.Bans, func(k string, v []byte) error {
		if k == banGlobal {
			var g banGlobalRecord
			if err := json.Unmarshal(v, &g); err != nil {
				return fmt.Errorf("management bans: corrupt record %s: %w", k, err)
			}
			global = g.Failures
			return nil
		}
		name, ok := strings.CutPrefix(k, banClientPrefix)
		if !ok {
			return fmt.Errorf("management bans: unknown record %q", k)
		}
		var r banRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("management bans: corrupt record %s: %w", k, err)
		}
		clients[name] = r
		return nil
	})
	return clients, global, err
}

func (s banStore) saveBans(clients map[string]*banRecord, global []time.Time, saveGlobal bool) error {
	w := &store.Write{}
	for name, r := range clients {
		put := store.Put{Bucket: store.Bans, Key: banClientPrefix + name}
		if r != nil {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			put.Value = b
		}
		w.Puts = append(w.Puts, put)
	}
	if saveGlobal {
		b, err := json.Marshal(banGlobalRecord{Failures: global})
		if err != nil {
			return err
		}
		w.Puts = append(w.Puts, store.Put{Bucket: store.Bans, Key: banGlobal, Value: b})
	}
	if len(w.Puts) == 0 {
		return nil
	}
	return s.st.Commit(w)
}
