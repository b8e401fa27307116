// Command textkv is a small replicated key-value store on hashicorp/raft with
// a plain-text HTTP API. It stands in for a third-party store in lab's tests:
// it is configured by command-line flags only, stores raw values (no JSON),
// has no health route and no JSON status; who leads shows in its Prometheus
// metrics, in the plain-text /status page and in the X-Raft-Leader header.
//
// See README.md for the API. Two flags make it deliberately unsafe
// (--ack-before-commit, --local-reads); without them it is linearizable.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const version = "0.4.1"

type peer struct {
	id       string
	raftAddr string // host:port as written in --peers
}

type options struct {
	id            string
	httpAddr      string
	httpAdvertise string
	raftBind      string
	raftAdvertise string
	peers         []peer
	dataDir       string
	redirect      bool

	// Deliberately unsafe behaviour.
	ackBeforeCommit bool
	localReads      bool

	tuning   tuning
	confPath string // the textkv.conf read, "" if none
}

// tuning is what textkv.conf may change. The defaults are hashicorp/raft's.
type tuning struct {
	heartbeatTimeout   time.Duration
	electionTimeout    time.Duration
	leaderLeaseTimeout time.Duration
	commitTimeout      time.Duration
	requestTimeout     time.Duration
	snapshotThreshold  uint64
}

func defaultTuning() tuning {
	return tuning{
		heartbeatTimeout:   time.Second,
		electionTimeout:    time.Second,
		leaderLeaseTimeout: 500 * time.Millisecond,
		commitTimeout:      50 * time.Millisecond,
		requestTimeout:     2 * time.Second,
		snapshotThreshold:  8192,
	}
}

func (o options) peer(id string) (peer, bool) {
	for _, p := range o.peers {
		if p.id == id {
			return p, true
		}
	}
	return peer{}, false
}

func usage(fs *flag.FlagSet) func() {
	return func() {
		fmt.Fprintf(os.Stderr, `textkv %s: a replicated key-value store (hashicorp/raft) with a plain-text HTTP API

usage: textkv --id n1 --peers n1=host1:7000,n2=host2:7000,n3=host3:7000 [flags]

flags:
`, version)
		fs.PrintDefaults()
		fmt.Fprintf(os.Stderr, `
textkv.conf (next to the executable, or --config) tunes raft's timing:
  heartbeat-timeout = 500ms   election-timeout = 500ms   leader-lease-timeout = 250ms
  commit-timeout = 20ms       request-timeout = 2s       snapshot-threshold = 1024
`)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("textkv", flag.ContinueOnError)
	fs.Usage = usage(fs)
	var o options
	var peers, config string
	var showVersion bool
	fs.StringVar(&o.id, "id", "", "this node's id (also its raft server id); must be one of --peers")
	fs.StringVar(&o.httpAddr, "http", ":9000", "where the HTTP API listens")
	fs.StringVar(&o.httpAdvertise, "http-advertise", "", "host:port at which the other nodes reach this node's HTTP API (default: the host name and the --http port)")
	fs.StringVar(&o.raftBind, "raft-bind", ":7000", "where raft's TCP transport listens")
	fs.StringVar(&o.raftAdvertise, "raft-advertise", "", "host:port at which the other nodes reach this node's raft (default: this node's address in --peers)")
	fs.StringVar(&peers, "peers", "", "every voter of the cluster, this node included: id=host:port,...")
	fs.StringVar(&o.dataDir, "data", "data", "folder of raft's log, stable store and snapshots (relative to the working directory)")
	fs.BoolVar(&o.redirect, "redirect", false, "followers answer 307 with Location and X-Raft-Leader instead of forwarding to the leader")
	fs.BoolVar(&o.ackBeforeCommit, "ack-before-commit", false, "UNSAFE: change the local map and answer a write before raft commits it")
	fs.BoolVar(&o.localReads, "local-reads", false, "UNSAFE: every node answers reads from its local state, without confirming leadership")
	fs.StringVar(&config, "config", "", "a textkv.conf to read (default: textkv.conf next to the executable, if present)")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")

	// An empty argument (e.g. an optional flag left out by a template) is not
	// a positional argument: drop it rather than stop parsing there.
	var kept []string
	for _, a := range args {
		if strings.TrimSpace(a) != "" {
			kept = append(kept, a)
		}
	}
	if err := fs.Parse(kept); err != nil {
		return o, err
	}
	if showVersion {
		fmt.Println("textkv", version)
		os.Exit(0)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (every setting is a --flag)", fs.Arg(0))
	}
	if o.id == "" {
		return o, fmt.Errorf("--id is required")
	}
	if peers == "" {
		return o, fmt.Errorf("--peers is required")
	}
	seen := map[string]bool{}
	for _, item := range strings.Split(peers, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		kv := strings.SplitN(item, "=", 2)
		if len(kv) != 2 || kv[0] == "" {
			return o, fmt.Errorf("--peers: %q is not id=host:port", item)
		}
		if _, _, err := net.SplitHostPort(kv[1]); err != nil {
			return o, fmt.Errorf("--peers: %s=%s is not host:port", kv[0], kv[1])
		}
		if seen[kv[0]] {
			return o, fmt.Errorf("--peers: %s appears twice", kv[0])
		}
		seen[kv[0]] = true
		o.peers = append(o.peers, peer{id: kv[0], raftAddr: kv[1]})
	}
	self, ok := o.peer(o.id)
	if !ok {
		return o, fmt.Errorf("--id %s is not one of --peers", o.id)
	}
	if o.raftAdvertise == "" {
		o.raftAdvertise = self.raftAddr
	}
	_, httpPort, err := net.SplitHostPort(o.httpAddr)
	if err != nil {
		return o, fmt.Errorf("--http %s is not host:port", o.httpAddr)
	}
	if o.httpAdvertise == "" {
		host, _ := os.Hostname()
		o.httpAdvertise = net.JoinHostPort(host, httpPort)
	}
	if _, _, err := net.SplitHostPort(o.httpAdvertise); err != nil {
		return o, fmt.Errorf("--http-advertise %s is not host:port", o.httpAdvertise)
	}

	o.tuning = defaultTuning()
	if config == "" {
		if exe, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(exe), "textkv.conf"); fileExists(p) {
				config = p
			}
		}
	}
	if config != "" {
		if err := readConf(config, &o.tuning); err != nil {
			return o, err
		}
		o.confPath = config
	}
	if o.tuning.leaderLeaseTimeout > o.tuning.heartbeatTimeout {
		return o, fmt.Errorf("%s: leader-lease-timeout (%s) must not exceed heartbeat-timeout (%s)", config, o.tuning.leaderLeaseTimeout, o.tuning.heartbeatTimeout)
	}
	return o, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// readConf reads `key = value` lines; # starts a comment.
func readConf(path string, t *tuning) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		kv := strings.SplitN(text, "=", 2)
		if len(kv) != 2 {
			return fmt.Errorf("%s:%d: expected key = value", path, line)
		}
		key, val := strings.TrimSpace(kv[0]), strings.TrimSpace(kv[1])
		dur := func(d *time.Duration) error {
			v, err := time.ParseDuration(val)
			if err != nil || v <= 0 {
				return fmt.Errorf("%s:%d: %s: %q is not a duration", path, line, key, val)
			}
			*d = v
			return nil
		}
		switch key {
		case "heartbeat-timeout":
			err = dur(&t.heartbeatTimeout)
		case "election-timeout":
			err = dur(&t.electionTimeout)
		case "leader-lease-timeout":
			err = dur(&t.leaderLeaseTimeout)
		case "commit-timeout":
			err = dur(&t.commitTimeout)
		case "request-timeout":
			err = dur(&t.requestTimeout)
		case "snapshot-threshold":
			t.snapshotThreshold, err = strconv.ParseUint(val, 10, 64)
		default:
			err = fmt.Errorf("%s:%d: unknown setting %q", path, line, key)
		}
		if err != nil {
			return err
		}
	}
	return sc.Err()
}

func main() {
	log.SetFlags(log.Ldate | log.Ltime | log.Lmicroseconds)
	log.SetPrefix("textkv ")
	o, err := parseFlags(os.Args[1:])
	if err == flag.ErrHelp {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "textkv: %v (see textkv --help)\n", err)
		os.Exit(2)
	}
	wd, _ := os.Getwd()
	log.Printf("textkv %s: node %s, http %s (advertised %s), raft %s (advertised %s), data %s in %s, conf %q",
		version, o.id, o.httpAddr, o.httpAdvertise, o.raftBind, o.raftAdvertise, o.dataDir, wd, o.confPath)
	if o.ackBeforeCommit || o.localReads {
		log.Printf("WARNING: unsafe mode: ack-before-commit=%v local-reads=%v", o.ackBeforeCommit, o.localReads)
	}

	// Listen first, so that the port accepts connections as soon as possible.
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		log.Fatalf("listen on --http %s: %v", o.httpAddr, err)
	}
	s, err := openStore(o)
	if err != nil {
		log.Fatalf("%v", err)
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Fatalf("http: %v", err)
		}
	}()
	go s.publishAPI()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	got := <-sig
	log.Printf("%s: shutting down", got)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	s.close()
	log.Printf("bye")
}
