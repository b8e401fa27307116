// Command monitoring is the reference solution of the monitoring lab: a small
// HTTP service instrumented with Prometheus' client_golang, exporting a request
// counter, a latency histogram and a gauge of logged-in users on /metrics.
//
// The same binary also contains the mistakes learners typically make, selected
// at run time with MONITORING_BUG (see README.md). Unset or empty means correct.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	v, err := selectVariant(os.Getenv("MONITORING_BUG"))
	if err != nil {
		log.Fatal(err)
	}
	if v.name != "" {
		log.Printf("MONITORING_BUG=%s: %s", v.name, v.description)
	}
	port := strings.TrimSpace(os.Getenv("PORT"))
	if port == "" {
		port = "8080"
	}

	reg := prometheus.NewRegistry()
	m := newMetrics(reg, v)
	s := &server{v: v, m: m, users: map[string]bool{}}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/work", s.work)
	mux.HandleFunc("/login", s.login)
	mux.HandleFunc("/logout", s.logout)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if v.metricsFlood {
		metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			line := []byte("# " + strings.Repeat("x", 1021) + "\n")
			for i := 0; i < 64*1024; i++ {
				if _, err := w.Write(line); err != nil {
					return
				}
			}
		})
	}
	if v.metricsHang {
		metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	}

	root := http.NewServeMux()
	// Prometheus' own scrapes are not counted: they would drown lab's requests.
	root.Handle("/metrics", metrics)
	root.Handle("/", m.instrument(mux))

	srv := &http.Server{Addr: ":" + port, Handler: root, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	log.Printf("listening on :%s", port)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

type server struct {
	v     variant
	m     *metrics
	mu    sync.Mutex
	users map[string]bool
}

// work waits ms milliseconds, then answers 200, or 500 with fail=1.
func (s *server) work(w http.ResponseWriter, r *http.Request) {
	ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
	if ms < 0 || ms > 10000 {
		http.Error(w, "ms must be between 0 and 10000", http.StatusBadRequest)
		return
	}
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
	case <-r.Context().Done():
		return
	}
	if f := r.URL.Query().Get("fail"); f == "1" || f == "true" {
		http.Error(w, "failed on purpose", http.StatusInternalServerError)
		return
	}
	w.Write([]byte("done\n"))
}

// user reads {"user": "..."} from the body.
func user(w http.ResponseWriter, r *http.Request) (string, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return "", false
	}
	var body struct {
		User string `json:"user"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil || strings.TrimSpace(body.User) == "" {
		http.Error(w, `want {"user": "<name>"}`, http.StatusBadRequest)
		return "", false
	}
	return body.User, true
}

func (s *server) login(w http.ResponseWriter, r *http.Request) {
	u, ok := user(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	if !s.users[u] {
		s.users[u] = true
		s.m.activeUsers.Inc()
	}
	s.mu.Unlock()
	w.Write([]byte("logged in\n"))
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	u, ok := user(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	if s.users[u] {
		delete(s.users, u)
		if !s.v.gaugeNeverDecremented {
			s.m.activeUsers.Dec()
		}
	}
	s.mu.Unlock()
	w.Write([]byte("logged out\n"))
}
