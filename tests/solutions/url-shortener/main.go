// Command urlshortener is the reference solution of the url-shortener lab: an HTTP
// service that stores short links in Redis and rate-limits link creation per client.
//
// The same binary also contains the mistakes learners typically make, selected at
// run time with SHORTENER_BUG (see README.md). Unset or empty means correct.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	port       string
	redisAddr  string
	baseURL    string
	rateLimit  int
	rateWindow time.Duration
}

func loadConfig() (config, error) {
	c := config{
		port:      envOr("PORT", "8080"),
		redisAddr: envOr("REDIS_ADDR", "127.0.0.1:6379"),
	}
	c.baseURL = strings.TrimRight(envOr("BASE_URL", "http://localhost:"+c.port), "/")

	limit, err := positiveInt("RATE_LIMIT", 10)
	if err != nil {
		return c, err
	}
	c.rateLimit = limit

	window, err := positiveInt("RATE_WINDOW_SECONDS", 60)
	if err != nil {
		return c, err
	}
	c.rateWindow = time.Duration(window) * time.Second
	return c, nil
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

func positiveInt(name string, def int) (int, error) {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s must be a positive integer, got %q", name, v)
	}
	return n, nil
}

func main() {
	log.SetOutput(os.Stderr)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	v, err := parseVariant(os.Getenv("SHORTENER_BUG"))
	if err != nil {
		log.Fatalf("SHORTENER_BUG: %v", err)
	}
	cfg, err := loadConfig()
	if err != nil {
		log.Fatalf("config: %v", err)
	}
	if v.name == "" {
		log.Printf("variant: correct (SHORTENER_BUG unset)")
	} else {
		log.Printf("variant: BUG %q: %s", v.name, v.description)
	}
	log.Printf("config: port=%s redis=%s base_url=%s rate_limit=%d/%s",
		cfg.port, cfg.redisAddr, cfg.baseURL, cfg.rateLimit, cfg.rateWindow)

	db := newRedisDB(cfg.redisAddr, v)
	a := newApp(cfg, v, db)

	srv := &http.Server{
		Addr:              ":" + cfg.port,
		Handler:           a.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          log.Default(),
	}

	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	log.Printf("listening on %s", ln.Addr())

	// Redis is checked in the background: /healthz must answer as soon as we
	// listen, whether Redis is up or not.
	go func() {
		if err := db.ping(context.Background()); err != nil {
			log.Printf("redis %s not reachable at start-up (will keep trying per request): %v", cfg.redisAddr, err)
		} else {
			log.Printf("redis %s reachable", cfg.redisAddr)
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		log.Fatalf("serve: %v", err)
	case <-ctx.Done():
	}
	stop()
	log.Printf("signal received, shutting down")

	// The orchestrator expects us gone within a second of SIGTERM: give in-flight
	// requests a short grace period, then close whatever is left.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Printf("shutdown: %v; closing remaining connections", err)
		srv.Close()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Printf("serve: %v", err)
	}
	db.close()
	log.Printf("bye")
}
