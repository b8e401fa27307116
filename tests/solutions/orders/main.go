// Command orders is the reference solution of the orders lab: an HTTP API that
// accepts orders and publishes them to RabbitMQ, and a worker in the same
// process that consumes them, applies each order exactly once in effect to
// per-product totals in Redis (at-least-once delivery, idempotent
// processing), retries a failing order MAX_RETRIES times and then moves it to
// the dead-letter queue with the reason.
//
// The same binary also contains the mistakes learners typically make,
// selected at run time with ORDERS_BUG (see README.md). Unset or empty means
// correct.
package main

import (
	"context"
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
	port       string
	amqpURL    string
	redisAddr  string
	maxRetries int
	workers    int
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		log.Fatalf("%s=%q: want a whole number >= 0", name, v)
	}
	return n
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	cfg := config{
		port:       envOr("PORT", "8080"),
		amqpURL:    envOr("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
		redisAddr:  envOr("REDIS_ADDR", "127.0.0.1:6379"),
		maxRetries: envInt("MAX_RETRIES", 3),
		workers:    envInt("WORKERS", 16),
	}
	if cfg.workers < 1 {
		cfg.workers = 1
	}
	bug, err := selectVariant(os.Getenv("ORDERS_BUG"))
	if err != nil {
		log.Fatal(err)
	}
	if bug.name != "" {
		log.Printf("ORDERS_BUG=%s: %s", bug.name, bug.description)
	}

	store := newStore(cfg.redisAddr)
	b := newBroker(cfg.amqpURL)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	w := &worker{cfg: cfg, bug: bug, store: store, broker: b}
	go b.run(ctx, w.consume)

	srv := &http.Server{Addr: ":" + cfg.port, Handler: newAPI(store, b, bug), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("orders listening on :%s (AMQP %s, Redis %s, MAX_RETRIES=%d, %d workers)", cfg.port, redact(cfg.amqpURL), cfg.redisAddr, cfg.maxRetries, cfg.workers)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// redact hides the password of an AMQP URL in logs.
func redact(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 {
		return u
	}
	creds := u[scheme+3 : at]
	if i := strings.Index(creds, ":"); i >= 0 {
		return u[:scheme+3] + creds[:i] + ":***" + u[at:]
	}
	return u
}
