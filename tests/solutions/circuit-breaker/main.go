// Command circuitbreaker is the reference solution of the circuit-breaker lab:
// an HTTP service that calls an upstream through a circuit breaker.
//
// The same binary holds the mistakes learners typically make, selected at run
// time with BREAKER_BUG (see README.md). Unset or empty means correct.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

func positiveInt(name string, def int) int {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		log.Fatalf("%s must be a positive integer, got %q", name, v)
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type server struct {
	upstream string
	client   *http.Client
	timeout  time.Duration
	br       *breaker
	v        variant
}

// call makes one upstream call; ok says whether it counts as a success.
func (s *server) call(ctx context.Context) (status int, body []byte, ok bool, err error) {
	started := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.upstream+"/quote", nil)
	if err != nil {
		return 0, nil, false, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, false, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, false, err
	}
	ok = resp.StatusCode < 500
	if s.v.slowIsFailure && time.Since(started) > 200*time.Millisecond {
		ok = false
	}
	return resp.StatusCode, body, ok, nil
}

func (s *server) quote(w http.ResponseWriter, r *http.Request) {
	trial, err := s.br.enter()
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "circuit open"})
		return
	}
	ctx := r.Context()
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	status, body, ok, err := s.call(ctx)
	s.br.done(trial, err == nil && ok)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusGatewayTimeout, map[string]string{"error": "upstream timed out"})
	case err != nil:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": fmt.Sprintf("upstream: %v", err)})
	case status >= 500:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": fmt.Sprintf("upstream answered %d", status)})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	v, err := parseVariant(os.Getenv("BREAKER_BUG"))
	if err != nil {
		log.Fatalf("BREAKER_BUG: %v", err)
	}
	timeout := time.Duration(positiveInt("UPSTREAM_TIMEOUT_MS", 1000)) * time.Millisecond
	s := &server{
		upstream: strings.TrimRight(envOr("UPSTREAM_URL", "http://127.0.0.1:9096"), "/"),
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second}},
		timeout:  timeout,
		v:        v,
		br: &breaker{
			maxFailures: positiveInt("BREAKER_FAILURES", 5),
			openFor:     time.Duration(positiveInt("BREAKER_OPEN_MS", 5000)) * time.Millisecond,
			v:           v,
		},
	}
	if v.noTimeout {
		s.timeout, s.client = 0, http.DefaultClient
	}
	if v.name != "" {
		log.Printf("variant %q: %s", v.name, v.description)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/api/quote", s.quote)
	mux.HandleFunc("/breaker", func(w http.ResponseWriter, r *http.Request) {
		st, n := s.br.snapshot()
		writeJSON(w, http.StatusOK, map[string]any{"state": st, "consecutive_failures": n})
	})
	srv := &http.Server{Addr: ":" + envOr("PORT", "8080"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf("listening on %s, upstream %s", srv.Addr, s.upstream)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
