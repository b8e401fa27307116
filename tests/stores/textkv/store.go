package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"
)

// entry is one command of the replicated log.
type entry struct {
	Op    string `json:"op"` // set, del, api
	Key   string `json:"key,omitempty"`
	Value []byte `json:"value,omitempty"`
	Node  string `json:"node,omitempty"` // api: the node whose HTTP address this is
	Addr  string `json:"addr,omitempty"` // api: host:port
}

// fsm is the replicated state: the keys, and every node's HTTP address (so
// that a follower knows where to forward to, as the leader published it).
type fsm struct {
	mu   sync.RWMutex
	data map[string][]byte
	api  map[string]string
}

func newFSM() *fsm { return &fsm{data: map[string][]byte{}, api: map[string]string{}} }

func (f *fsm) Apply(l *raft.Log) interface{} {
	var e entry
	if err := json.Unmarshal(l.Data, &e); err != nil {
		return fmt.Errorf("log entry %d: %v", l.Index, err)
	}
	f.apply(e)
	return nil
}

func (f *fsm) apply(e entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch e.Op {
	case "set":
		f.data[e.Key] = append([]byte(nil), e.Value...)
	case "del":
		delete(f.data, e.Key)
	case "api":
		f.api[e.Node] = e.Addr
	}
}

func (f *fsm) get(key string) ([]byte, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.data[key]
	return v, ok
}

func (f *fsm) apiOf(node string) string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.api[node]
}

func (f *fsm) size() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.data)
}

type image struct {
	Data map[string][]byte `json:"data"`
	API  map[string]string `json:"api"`
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	img := image{Data: make(map[string][]byte, len(f.data)), API: make(map[string]string, len(f.api))}
	for k, v := range f.data {
		img.Data[k] = v
	}
	for k, v := range f.api {
		img.API[k] = v
	}
	return img, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var img image
	if err := json.NewDecoder(rc).Decode(&img); err != nil {
		return err
	}
	if img.Data == nil {
		img.Data = map[string][]byte{}
	}
	if img.API == nil {
		img.API = map[string]string{}
	}
	f.mu.Lock()
	f.data, f.api = img.Data, img.API
	f.mu.Unlock()
	return nil
}

func (img image) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(img); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (image) Release() {}

type store struct {
	o     options
	raft  *raft.Raft
	fsm   *fsm
	trans *raft.NetworkTransport
	bolt  *raftboltdb.BoltStore

	// readyTerm is the term in which this node, as leader, completed a
	// barrier: from then on its map holds every entry of earlier terms, and
	// a read needs only VerifyLeader.
	readyTerm uint64

	client *http.Client
	stats  *counters

	addrMu     sync.Mutex
	addrToID   map[string]string
	resolvedAt time.Time
}

func openStore(o options) (*store, error) {
	s := &store{o: o, fsm: newFSM(), stats: newCounters()}
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: os.Stderr})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(o.id)
	rc.HeartbeatTimeout = o.tuning.heartbeatTimeout
	rc.ElectionTimeout = o.tuning.electionTimeout
	rc.LeaderLeaseTimeout = o.tuning.leaderLeaseTimeout
	rc.CommitTimeout = o.tuning.commitTimeout
	rc.SnapshotThreshold = o.tuning.snapshotThreshold
	rc.Logger = logger

	adv, err := resolve(o.raftAdvertise, 15*time.Second)
	if err != nil {
		return nil, fmt.Errorf("--raft-advertise: %v", err)
	}
	s.trans, err = raft.NewTCPTransportWithLogger(o.raftBind, adv, 3, time.Second, logger)
	if err != nil {
		return nil, fmt.Errorf("raft transport on %s (advertised %s): %v", o.raftBind, adv, err)
	}
	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		s.close()
		return nil, fmt.Errorf("--data: %v", err)
	}
	s.bolt, err = raftboltdb.NewBoltStore(filepath.Join(o.dataDir, "raft.db"))
	if err != nil {
		s.close()
		return nil, fmt.Errorf("open %s: %v", filepath.Join(o.dataDir, "raft.db"), err)
	}
	logs, err := raft.NewLogCache(256, s.bolt)
	if err != nil {
		s.close()
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(o.dataDir, 2, logger)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("snapshots in %s: %v", o.dataDir, err)
	}
	existing, err := raft.HasExistingState(logs, s.bolt, snaps)
	if err != nil {
		s.close()
		return nil, err
	}
	if existing {
		log.Printf("found raft state in %s: recovering", o.dataDir)
	} else {
		var servers []raft.Server
		for _, p := range o.peers {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.id), Address: raft.ServerAddress(p.raftAddr)})
		}
		log.Printf("no raft state in %s: bootstrapping %d voters", o.dataDir, len(servers))
		if err := raft.BootstrapCluster(rc, logs, s.bolt, snaps, s.trans, raft.Configuration{Servers: servers}); err != nil {
			s.close()
			return nil, fmt.Errorf("bootstrap: %v", err)
		}
	}
	s.raft, err = raft.NewRaft(rc, s.fsm, logs, s.bolt, snaps, s.trans)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("start raft: %v", err)
	}
	s.client = &http.Client{
		Timeout: o.tuning.requestTimeout + time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 500 * time.Millisecond}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.resolvePeers()
	s.initMetrics()
	return s, nil
}

func resolve(addr string, within time.Duration) (*net.TCPAddr, error) {
	deadline := time.Now().Add(within)
	for {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err == nil && !a.IP.IsUnspecified() && a.IP != nil {
			return a, nil
		}
		if err == nil {
			err = fmt.Errorf("%s is not an address other nodes can reach", addr)
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s *store) close() {
	if s.raft != nil {
		if s.raft.State() == raft.Leader {
			waitFor(s.raft.LeadershipTransfer(), time.Second)
		}
		s.raft.Shutdown().Error()
	}
	if s.trans != nil {
		s.trans.Close()
	}
	if s.bolt != nil {
		s.bolt.Close()
	}
}

// resolvePeers maps raft addresses (as written and as resolved now) to ids:
// Leader() returns the address the leader advertises, a resolved one.
func (s *store) resolvePeers() {
	m := map[string]string{string(s.trans.LocalAddr()): s.o.id}
	for _, p := range s.o.peers {
		if a, err := net.ResolveTCPAddr("tcp", p.raftAddr); err == nil {
			m[a.String()] = p.id
		}
		m[p.raftAddr] = p.id
	}
	s.addrMu.Lock()
	s.addrToID, s.resolvedAt = m, time.Now()
	s.addrMu.Unlock()
}

// leaderID is who this node believes leads, "" when it knows no leader.
func (s *store) leaderID() string {
	if s.raft.State() == raft.Leader {
		return s.o.id
	}
	addr := string(s.raft.Leader())
	if addr == "" {
		return ""
	}
	s.addrMu.Lock()
	id, ok := s.addrToID[addr]
	stale := time.Since(s.resolvedAt) > time.Second
	s.addrMu.Unlock()
	if !ok && stale {
		s.resolvePeers()
		s.addrMu.Lock()
		id = s.addrToID[addr]
		s.addrMu.Unlock()
	}
	return id
}

func (s *store) isLeader() bool { return s.raft.State() == raft.Leader }

func (s *store) term() uint64 {
	t, _ := strconv.ParseUint(s.raft.Stats()["term"], 10, 64)
	return t
}

// publishAPI keeps this node's HTTP address in the replicated state while it
// leads, so that followers know where to send clients and requests.
func (s *store) publishAPI() {
	for {
		time.Sleep(100 * time.Millisecond)
		if s.raft.State() == raft.Shutdown {
			return
		}
		if !s.isLeader() || s.fsm.apiOf(s.o.id) == s.o.httpAdvertise {
			continue
		}
		data, _ := json.Marshal(entry{Op: "api", Node: s.o.id, Addr: s.o.httpAdvertise})
		if err := waitFor(s.raft.Apply(data, time.Second), s.o.tuning.requestTimeout); err != nil {
			log.Printf("publishing this node's HTTP address: %v", err)
		} else {
			log.Printf("leading; HTTP address %s published", s.o.httpAdvertise)
		}
	}
}

var errTimeout = errors.New("timed out")

// waitFor waits at most d for a raft future: the timeouts raft's calls take
// bound only the time to enqueue.
func waitFor(f raft.Future, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errTimeout
	}
}

// confirmLeader makes a linearizable read safe on this node: once per term a
// barrier (every entry of earlier terms applied here), then VerifyLeader
// (a majority still follows this node now).
func (s *store) confirmLeader() error {
	t := s.term()
	if atomic.LoadUint64(&s.readyTerm) != t {
		if err := waitFor(s.raft.Barrier(s.o.tuning.requestTimeout), s.o.tuning.requestTimeout); err != nil {
			return err
		}
		atomic.StoreUint64(&s.readyTerm, t)
	}
	return waitFor(s.raft.VerifyLeader(), s.o.tuning.requestTimeout)
}

// set replicates a write; nil once it is committed and applied here.
func (s *store) set(e entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if s.o.ackBeforeCommit {
		// Unsafe: the local map first, raft in the background, the answer now.
		s.fsm.apply(e)
		s.raft.Apply(data, s.o.tuning.requestTimeout)
		return nil
	}
	f := s.raft.Apply(data, s.o.tuning.requestTimeout)
	if err := waitFor(f, s.o.tuning.requestTimeout); err != nil {
		return err
	}
	if rerr, ok := f.Response().(error); ok && rerr != nil {
		return rerr
	}
	return nil
}
