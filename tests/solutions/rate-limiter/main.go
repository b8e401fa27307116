// Command ratelimiter is the reference solution of the rate-limiter lab: an
// HTTP API whose requests are limited per client by a sliding window kept in
// Redis, so that every instance of the service enforces one shared limit.
//
// The same binary also holds the mistakes learners typically make, selected
// at run time with RATELIMIT_BUG (see README.md). Unset or empty means correct.
package main

import (
	"context"
	"encoding/json"
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
	port      string
	redisAddr string
	limit     int
	window    time.Duration
	instance  string
}

func loadConfig() (config, error) {
	c := config{
		port:      envOr("PORT", "8080"),
		redisAddr: envOr("REDIS_ADDR", "127.0.0.1:6379"),
		instance:  envOr("INSTANCE", "1"),
	}
	limit, err := positiveInt("RATE_LIMIT", 10)
	if err != nil {
		return c, err
	}
	ms, err := positiveInt("RATE_WINDOW_MS", 60000)
	if err != nil {
		return c, err
	}
	c.limit, c.window = limit, time.Duration(ms)*time.Millisecond
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

// limiter decides whether one more request of a client is admitted now.
type limiter interface {
	// allow records the request when it is admitted. It gives whether it was,
	// how many requests the client has left in the window, and when refused how
	// long until the oldest admitted request leaves the window.
	allow(ctx context.Context, client string) (decision, error)
}

type decision struct {
	admitted   bool
	remaining  int
	retryAfter time.Duration
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type server struct {
	cfg     config
	lim     limiter
	v       variant
	timeout time.Duration
}

func (s *server) resource(w http.ResponseWriter, r *http.Request) {
	client := strings.TrimSpace(r.Header.Get("X-API-Key"))
	if client == "" {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing X-API-Key header"})
		return
	}
	key := client
	if s.v.globalKey {
		key = r.URL.Path
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	d, err := s.lim.allow(ctx, key)
	limit := strconv.Itoa(s.cfg.limit)
	if err != nil {
		if s.v.failClosed {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "rate limiter unavailable"})
			return
		}
		// Fail open: the limiter's store is down, the API is not.
		log.Printf("rate limiter unavailable, admitting %s: %v", client, err)
		w.Header().Set("X-RateLimit-Limit", limit)
		w.Header().Set("X-RateLimit-Degraded", "true")
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "client": client, "instance": s.cfg.instance, "degraded": true})
		return
	}
	w.Header().Set("X-RateLimit-Limit", limit)
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(d.remaining))
	if !d.admitted {
		if !s.v.noRetryAfter {
			w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(d.retryAfter), 10))
		}
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": "rate limit exceeded", "client": client})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "client": client, "instance": s.cfg.instance, "remaining": d.remaining})
}

// retryAfterSeconds rounds up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

func main() {
	log.SetOutput(os.Stderr)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	v, err := parseVariant(os.Getenv("RATELIMIT_BUG"))
	if err != nil {
		log.Fatalf("RATELIMIT_BUG: %v", err)
	}
	cfg, err := loadConfig()
	if err != nil {
		log.Fatal(err)
	}
	if v.name != "" {
		log.Printf("variant %q: %s", v.name, v.description)
	}
	s := &server{cfg: cfg, v: v, timeout: 300 * time.Millisecond}
	if v.noRedisTimeout {
		s.timeout = time.Hour
	}
	if v.perInstance {
		s.lim = newMemoryLimiter(cfg.limit, cfg.window)
	} else {
		s.lim = newRedisLimiter(cfg.redisAddr, cfg.limit, cfg.window, v)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/api/resource", s.resource)
	srv := &http.Server{Addr: ":" + cfg.port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf("listening on :%s, limit %d per %v, Redis at %s", cfg.port, cfg.limit, cfg.window, cfg.redisAddr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
