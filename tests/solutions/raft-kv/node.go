package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"
)

// Raft timing, tuned short for a lab: a follower notices a dead leader after
// 0.5-1 s without contact and a new leader is normally in place within 2 s.
const (
	heartbeatTimeout   = 500 * time.Millisecond
	electionTimeout    = 500 * time.Millisecond
	leaderLeaseTimeout = 250 * time.Millisecond
	commitTimeout      = 20 * time.Millisecond
	transportTimeout   = time.Second // I/O deadline of one raft RPC (and its dial)

	opTimeout = 2 * time.Second // how long the leader waits for a commit before 503
)

type node struct {
	cfg   config
	v     variant
	raft  *raft.Raft
	fsm   *kvFSM
	trans *raft.NetworkTransport
	bolt  *raftboltdb.BoltStore // nil with in-memory stores

	client *http.Client // for forwarding to the leader

	// Leader() returns the address the leader advertises. NewTCPTransport wants a
	// resolved *net.TCPAddr, so that is an IP:port, not the host name in PEERS.
	// addrToID maps both forms to node ids.
	addrMu     sync.Mutex
	addrToID   map[string]string
	resolvedAt time.Time
}

func startNode(cfg config, v variant) (*node, error) {
	n := &node{cfg: cfg, v: v, fsm: newFSM()}

	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "raft " + cfg.nodeID,
		Level:  hclog.Info,
		Output: os.Stderr,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.nodeID)
	rc.HeartbeatTimeout = heartbeatTimeout
	rc.ElectionTimeout = electionTimeout
	rc.LeaderLeaseTimeout = leaderLeaseTimeout
	rc.CommitTimeout = commitTimeout
	rc.SnapshotInterval = 10 * time.Second
	rc.SnapshotThreshold = 1024
	rc.TrailingLogs = 1024
	rc.Logger = logger

	adv, err := resolveAdvertise(cfg.raftAdvertise)
	if err != nil {
		return nil, err
	}
	n.trans, err = raft.NewTCPTransportWithLogger(cfg.raftAddr, adv, 3, transportTimeout, logger)
	if err != nil {
		return nil, fmt.Errorf("raft transport on RAFT_ADDR %s (advertised %s): %v", cfg.raftAddr, adv, err)
	}

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if v.memoryStores {
		// The mistake: everything raft must remember across a restart (log, current
		// term, vote, snapshots) lives in this process only.
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
			n.trans.Close()
			return nil, fmt.Errorf("DATA_DIR: %v", err)
		}
		n.bolt, err = raftboltdb.NewBoltStore(filepath.Join(cfg.dataDir, "raft.db"))
		if err != nil {
			n.trans.Close()
			return nil, fmt.Errorf("open %s: %v", filepath.Join(cfg.dataDir, "raft.db"), err)
		}
		cached, err := raft.NewLogCache(512, n.bolt)
		if err != nil {
			n.close()
			return nil, err
		}
		logs, stable = cached, n.bolt
		snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.dataDir, 2, logger)
		if err != nil {
			n.close()
			return nil, fmt.Errorf("snapshot store in %s: %v", cfg.dataDir, err)
		}
	}

	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("inspect raft state: %v", err)
	}
	if existing {
		log.Printf("raftkv: existing raft state found in %s, recovering (no bootstrap)", cfg.dataDir)
	} else {
		var servers []raft.Server
		for _, p := range cfg.peers {
			servers = append(servers, raft.Server{
				Suffrage: raft.Voter,
				ID:       raft.ServerID(p.id),
				Address:  raft.ServerAddress(p.raftAddr),
			})
		}
		log.Printf("raftkv: no raft state, bootstrapping the cluster from PEERS (%d voters)", len(servers))
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
			n.close()
			return nil, fmt.Errorf("bootstrap: %v", err)
		}
	}

	n.raft, err = raft.NewRaft(rc, n.fsm, logs, stable, snaps, n.trans)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("start raft: %v", err)
	}

	n.client = &http.Client{
		Timeout: opTimeout + 500*time.Millisecond,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 500 * time.Millisecond}).DialContext,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     30 * time.Second,
		},
		// The leader may itself answer 307 (REDIRECT=1 and it lost leadership):
		// relay that to the client rather than following it here.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	n.resolvePeers()
	return n, nil
}

// resolveAdvertise resolves RAFT_ADVERTISE, retrying for a while: in a container
// the name may not be in DNS yet during the first moments.
func resolveAdvertise(addr string) (*net.TCPAddr, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err == nil {
			return a, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("resolve RAFT_ADVERTISE %s: %v", addr, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// resolvePeers rebuilds the address -> id map: the addresses written in PEERS,
// what they resolve to now, and this node's own advertised address.
func (n *node) resolvePeers() {
	m := map[string]string{string(n.trans.LocalAddr()): n.cfg.nodeID}
	for _, p := range n.cfg.peers {
		if a, err := net.ResolveTCPAddr("tcp", p.raftAddr); err == nil {
			m[a.String()] = p.id
		}
	}
	for _, p := range n.cfg.peers {
		m[p.raftAddr] = p.id
	}
	n.addrMu.Lock()
	n.addrToID = m
	n.resolvedAt = time.Now()
	n.addrMu.Unlock()
}

// leaderID is the id of the node this node believes is the leader, "" if none.
func (n *node) leaderID() string {
	addr := string(n.raft.Leader())
	if addr == "" {
		return ""
	}
	n.addrMu.Lock()
	id, ok := n.addrToID[addr]
	stale := time.Since(n.resolvedAt) > time.Second
	n.addrMu.Unlock()
	if ok {
		return id
	}
	if stale {
		n.resolvePeers()
		n.addrMu.Lock()
		id = n.addrToID[addr]
		n.addrMu.Unlock()
	}
	return id
}

func (n *node) isLeader() bool { return n.raft.State() == raft.Leader }

// handOverLeadership transfers leadership away if this node leads, waiting at most d.
func (n *node) handOverLeadership(d time.Duration) {
	if n.raft == nil || !n.isLeader() {
		return
	}
	if err := waitFuture(n.raft.LeadershipTransfer(), d); err != nil {
		log.Printf("raftkv: leadership transfer: %v", err)
		return
	}
	log.Printf("raftkv: leadership handed over")
}

func (n *node) close() {
	if n.raft != nil {
		if err := n.raft.Shutdown().Error(); err != nil {
			log.Printf("raftkv: raft shutdown: %v", err)
		}
	}
	if n.trans != nil {
		n.trans.Close()
	}
	if n.bolt != nil {
		n.bolt.Close()
	}
}

var errTimeout = errors.New("timed out")

// waitFuture waits for a raft future for at most d. raft's own timeout arguments
// (Apply, Barrier) only bound the time to enqueue, not the time to commit.
func waitFuture(f raft.Future, d time.Duration) error {
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
