package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// command is one entry of the replicated log.
type command struct {
	Op    string `json:"op"` // put, delete or cas
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
	From  string `json:"from,omitempty"`
	To    string `json:"to,omitempty"`
}

// result is what applying a command returns (ApplyFuture.Response()).
type result struct {
	ok    bool    // false only for a cas whose expected value did not match
	value *string // the value after the command (cas failure: the current value)
	err   error   // the entry could not be decoded
}

// kvFSM is the replicated state machine: a map of strings.
type kvFSM struct {
	mu   sync.RWMutex
	data map[string]string
}

func newFSM() *kvFSM { return &kvFSM{data: map[string]string{}} }

func (f *kvFSM) get(key string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.data[key]
	return v, ok
}

func (f *kvFSM) size() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.data)
}

// Apply is called by raft, in log order, once an entry is committed.
func (f *kvFSM) Apply(l *raft.Log) interface{} {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return result{err: fmt.Errorf("log entry %d: %v", l.Index, err)}
	}
	return f.apply(c)
}

// apply runs one command against the map. The correct service calls it only from
// Apply; the ack-before-commit variant also calls it straight from the handler.
func (f *kvFSM) apply(c command) result {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c.Op {
	case "put":
		f.data[c.Key] = c.Value
		v := c.Value
		return result{ok: true, value: &v}
	case "delete":
		delete(f.data, c.Key)
		return result{ok: true}
	case "cas":
		cur, found := f.data[c.Key]
		if !found {
			return result{ok: false}
		}
		if cur != c.From {
			return result{ok: false, value: &cur}
		}
		f.data[c.Key] = c.To
		v := c.To
		return result{ok: true, value: &v}
	default:
		return result{err: fmt.Errorf("unknown op %q", c.Op)}
	}
}

// Snapshot is called by raft on the FSM goroutine, so the copy is consistent with
// the last applied entry. Persist runs concurrently with later Applies.
func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	cp := make(map[string]string, len(f.data))
	for k, v := range f.data {
		cp[k] = v
	}
	return &kvSnapshot{data: cp}, nil
}

// Restore replaces the whole map with a snapshot's content.
func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var data map[string]string
	if err := json.NewDecoder(rc).Decode(&data); err != nil {
		return fmt.Errorf("decode snapshot: %v", err)
	}
	if data == nil {
		data = map[string]string{}
	}
	f.mu.Lock()
	f.data = data
	f.mu.Unlock()
	return nil
}

type kvSnapshot struct{ data map[string]string }

func (s *kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.data); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *kvSnapshot) Release() {}
