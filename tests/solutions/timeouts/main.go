// Command timeouts is the reference solution of the timeouts lab: an HTTP
// service that calls a flaky upstream with a deadline on the whole call,
// cancels the call when its own client goes away, reuses its connections, and
// leaks no goroutine whatever the upstream does.
//
// The same binary holds the mistakes learners typically make, selected at run
// time with TIMEOUTS_BUG (see README.md). Unset or empty means correct.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"runtime"
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type result struct {
	status int
	body   []byte
	err    error
}

type server struct {
	upstream string
	timeout  time.Duration
	client   *http.Client
	v        variant
}

// fetch makes the upstream call under ctx and reads the whole body.
func (s *server) fetch(ctx context.Context, client *http.Client) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.upstream+"/data", nil)
	if err != nil {
		return result{err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return result{status: resp.StatusCode, body: body, err: err}
}

func (s *server) handle(w http.ResponseWriter, r *http.Request) {
	var res result
	switch {
	case s.v.leak:
		// The result goes through an unbuffered channel that nobody reads once
		// the handler gave up: the goroutine blocks on its send for ever.
		ch := make(chan result)
		ctx := r.Context()
		go func() { ch <- s.fetch(ctx, s.client) }()
		select {
		case res = <-ch:
		case <-time.After(s.timeout):
			res = result{err: context.DeadlineExceeded}
		}
	case s.v.defaultClient:
		res = s.fetch(r.Context(), http.DefaultClient)
	case s.v.headerTimeoutOnly:
		res = s.fetch(r.Context(), s.client)
	case s.v.newTransport:
		c := &http.Client{Transport: &http.Transport{}}
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		defer cancel()
		res = s.fetch(ctx, c)
	default:
		parent := r.Context()
		if s.v.backgroundCtx {
			parent = context.Background()
		}
		ctx, cancel := context.WithTimeout(parent, s.timeout)
		defer cancel()
		res = s.fetch(ctx, s.client)
	}
	switch {
	case errors.Is(res.err, context.DeadlineExceeded):
		writeJSON(w, http.StatusGatewayTimeout, map[string]string{"error": "upstream timed out"})
	case errors.Is(res.err, context.Canceled):
		// The client went away: nobody reads this answer.
		w.WriteHeader(499)
	case res.err != nil:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": fmt.Sprintf("upstream: %v", res.err)})
	case res.status >= 500:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": fmt.Sprintf("upstream answered %d", res.status)})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(res.status)
		_, _ = w.Write(res.body)
	}
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	v, err := parseVariant(os.Getenv("TIMEOUTS_BUG"))
	if err != nil {
		log.Fatalf("TIMEOUTS_BUG: %v", err)
	}
	ms, err := strconv.Atoi(envOr("UPSTREAM_TIMEOUT_MS", "1000"))
	if err != nil || ms < 1 {
		log.Fatalf("UPSTREAM_TIMEOUT_MS must be a positive integer")
	}
	transport := &http.Transport{
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     30 * time.Second,
	}
	s := &server{
		upstream: strings.TrimRight(envOr("UPSTREAM_URL", "http://127.0.0.1:9096"), "/"),
		timeout:  time.Duration(ms) * time.Millisecond,
		client:   &http.Client{Transport: transport},
		v:        v,
	}
	switch {
	case v.headerTimeoutOnly:
		// Only the wait for the headers is bounded; a body that trickles is read for ever.
		s.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32, ResponseHeaderTimeout: s.timeout}}
	case v.defaultTransport:
		// http.DefaultTransport keeps 2 idle connections per host.
		s.client = &http.Client{}
	case v.leak:
		s.client = &http.Client{Transport: transport, Timeout: 2 * s.timeout}
	}
	if v.name != "" {
		log.Printf("variant %q: %s", v.name, v.description)
	}
	expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/api/fetch", s.handle)
	mux.Handle("/debug/vars", expvar.Handler())
	srv := &http.Server{Addr: ":" + envOr("PORT", "8080"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf("listening on %s, upstream %s, deadline %v", srv.Addr, s.upstream, s.timeout)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
