package server

import (
	"encoding/json"
	"fmt"

	"github.com/twokey/twokey/programs"
	"github.com/twokey/twokey/store"
)

// programStore keeps program keys (their hashes, policy and monthly
// count; never a key) in the store's programs bucket, by name.
type programStore struct{ st *store.Store }

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

func loadPrograms(st *store.Store) ([]*programs.Program, error) {
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
