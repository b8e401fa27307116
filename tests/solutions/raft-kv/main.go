// Command raftkv is the reference solution of the raft lab: a key-value store
// replicated over three nodes with hashicorp/raft, behind a small JSON HTTP API.
//
// The same binary also contains mistakes learners typically make, selected at
// run time with RAFT_BUG (see README.md). Unset or empty means correct.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type peer struct {
	id       string
	raftAddr string // host:port as written in PEERS
	httpURL  string // base URL from PEER_HTTP, no trailing slash
}

type config struct {
	nodeID        string
	httpAddr      string
	raftAddr      string
	raftAdvertise string
	dataDir       string
	peers         []peer // in PEERS order
	redirect      bool
}

func (c config) peer(id string) (peer, bool) {
	for _, p := range c.peers {
		if p.id == id {
			return p, true
		}
	}
	return peer{}, false
}

func loadConfig() (config, error) {
	c := config{
		nodeID:   env("NODE_ID"),
		httpAddr: envOr("HTTP_ADDR", "0.0.0.0:8080"),
		raftAddr: envOr("RAFT_ADDR", "0.0.0.0:7000"),
		redirect: env("REDIRECT") == "1" || strings.EqualFold(env("REDIRECT"), "true"),
	}
	if c.nodeID == "" {
		return c, fmt.Errorf("NODE_ID is not set")
	}
	raftAddrs, order, err := parseList("PEERS", env("PEERS"))
	if err != nil {
		return c, err
	}
	httpURLs, _, err := parseList("PEER_HTTP", env("PEER_HTTP"))
	if err != nil {
		return c, err
	}
	for _, id := range order {
		if _, _, err := net.SplitHostPort(raftAddrs[id]); err != nil {
			return c, fmt.Errorf("PEERS: %s=%s is not host:port", id, raftAddrs[id])
		}
		u, ok := httpURLs[id]
		if !ok {
			return c, fmt.Errorf("PEER_HTTP has no entry for %s (PEERS has)", id)
		}
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return c, fmt.Errorf("PEER_HTTP: %s=%s is not an http:// URL", id, u)
		}
		c.peers = append(c.peers, peer{id: id, raftAddr: raftAddrs[id], httpURL: strings.TrimRight(u, "/")})
	}
	self, ok := c.peer(c.nodeID)
	if !ok {
		return c, fmt.Errorf("NODE_ID %q is not one of PEERS (%s)", c.nodeID, strings.Join(order, ", "))
	}
	c.raftAdvertise = envOr("RAFT_ADVERTISE", self.raftAddr)
	c.dataDir = envOr("DATA_DIR", "data/"+c.nodeID)
	return c, nil
}

// parseList reads "n1=a,n2=b,..." into a map and the order of its keys.
func parseList(name, s string) (map[string]string, []string, error) {
	if s == "" {
		return nil, nil, fmt.Errorf("%s is not set", name)
	}
	m := map[string]string{}
	var order []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, nil, fmt.Errorf("%s: %q is not id=value", name, item)
		}
		if _, dup := m[k]; dup {
			return nil, nil, fmt.Errorf("%s: %s appears twice", name, k)
		}
		m[k] = v
		order = append(order, k)
	}
	if len(order) == 0 {
		return nil, nil, fmt.Errorf("%s is empty", name)
	}
	return m, order, nil
}

func env(name string) string { return strings.TrimSpace(os.Getenv(name)) }

func envOr(name, def string) string {
	if v := env(name); v != "" {
		return v
	}
	return def
}

func main() {
	log.SetOutput(os.Stderr)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	v, err := parseVariant(os.Getenv("RAFT_BUG"))
	if err != nil {
		log.Printf("raftkv: %v", err)
		os.Exit(1)
	}
	cfg, err := loadConfig()
	if err != nil {
		log.Printf("raftkv: configuration: %v", err)
		os.Exit(1)
	}
	log.SetPrefix(cfg.nodeID + " ")
	mode := "forward"
	if cfg.redirect {
		mode = "redirect"
	}
	log.Printf("raftkv: variant %s: %s", v.name, v.description)
	log.Printf("raftkv: node %s, http %s, raft %s (advertised as %s), data %s, followers %s requests",
		cfg.nodeID, cfg.httpAddr, cfg.raftAddr, cfg.raftAdvertise, cfg.dataDir, mode)

	n, err := startNode(cfg, v)
	if err != nil {
		log.Printf("raftkv: %v", err)
		os.Exit(1)
	}

	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		log.Printf("raftkv: listen on HTTP_ADDR %s: %v", cfg.httpAddr, err)
		n.close()
		os.Exit(1)
	}
	srv := &http.Server{Handler: n.routes(), ReadHeaderTimeout: 5 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Printf("raftkv: HTTP listening on %s", ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Printf("raftkv: %v, shutting down", s)
	case err := <-serveErr:
		log.Printf("raftkv: HTTP server stopped: %v", err)
		n.close()
		os.Exit(1)
	}

	// A leader that is told to stop hands its leadership over first, so the
	// cluster does not wait an election timeout to notice it is gone.
	n.handOverLeadership(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	srv.Shutdown(ctx)
	cancel()
	n.close()
	log.Printf("raftkv: stopped")
}
