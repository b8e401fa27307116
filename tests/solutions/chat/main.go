// Command chat is the reference solution of the chat lab: a WebSocket chat
// server whose instances share messages through Redis Pub/Sub.
//
// The same binary also contains the mistakes learners typically make, selected
// at run time with CHAT_BUG (see README.md). Unset or empty means correct.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	port         string
	redisAddr    string
	nodeID       string
	origins      map[string]bool // normalised: see normOrigin
	rawOrigins   []string        // ALLOWED_ORIGINS split on commas, as written (for the origin-not-normalised variant)
	pingInterval time.Duration
	pongWait     time.Duration
	writeWait    time.Duration
	sendBuffer   int
	maxMessage   int64
}

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}

func duration(k string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(k)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q is not a positive duration such as 1s or 500ms", k, v)
	}
	return d, nil
}

// normOrigin is how an Origin and each entry of ALLOWED_ORIGINS are compared:
// without surrounding spaces, in lower case, without a trailing slash.
// Nothing else: another scheme, host or port is another origin.
func normOrigin(o string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
}

func loadConfig() (config, error) {
	c := config{
		port:       envOr("PORT", "8080"),
		redisAddr:  envOr("REDIS_ADDR", "127.0.0.1:6379"),
		nodeID:     envOr("NODE_ID", "n1"),
		origins:    map[string]bool{},
		maxMessage: 64 * 1024,
	}
	for _, o := range strings.Split(os.Getenv("ALLOWED_ORIGINS"), ",") {
		c.rawOrigins = append(c.rawOrigins, o)
		if o = normOrigin(o); o != "" {
			c.origins[o] = true
		}
	}
	var err error
	if c.pingInterval, err = duration("PING_INTERVAL", 10*time.Second); err != nil {
		return c, err
	}
	if c.pongWait, err = duration("PONG_WAIT", c.pingInterval*5/2); err != nil {
		return c, err
	}
	if c.writeWait, err = duration("WRITE_WAIT", time.Second); err != nil {
		return c, err
	}
	c.sendBuffer = 256
	if v := os.Getenv("SEND_BUFFER"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("SEND_BUFFER=%q is not a positive number", v)
		}
		c.sendBuffer = n
	}
	return c, nil
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	cfg, err := loadConfig()
	if err != nil {
		log.Fatal(err)
	}
	bug, err := parseVariant(os.Getenv("CHAT_BUG"))
	if err != nil {
		log.Fatal(err)
	}
	if bug.name != "" {
		log.Printf("CHAT_BUG=%s: %s", bug.name, bug.description)
	}
	if bug.fixedPongWait {
		cfg.pongWait = cfg.pingInterval * 5 / 2
	}

	bus := newBus(cfg.redisAddr, bug)
	hub := newHub(bug)
	go hub.run()
	if !bug.localOnly {
		go bus.subscribe(hub, bug)
	}
	srv := &server{cfg: cfg, bug: bug, hub: hub, bus: bus}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/ws", srv.serveWS)
	httpSrv := &http.Server{Addr: ":" + cfg.port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		_ = httpSrv.Shutdown(ctx)
	}()
	log.Printf("node %s listening on :%s (redis %s, ping every %s, pong wait %s, %d allowed origin(s))", cfg.nodeID, cfg.port, cfg.redisAddr, cfg.pingInterval, cfg.pongWait, len(cfg.origins))
	if err := httpSrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
