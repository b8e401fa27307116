// Command memlimit is the reference solution of the memlimit lab: a service
// that keeps documents in memory and transforms uploads, run under a
// container memory limit. It reads the limit from its cgroup at start-up and
// sets the Go runtime's soft memory limit to 90 % of it, so that the garbage
// collector works harder near the limit instead of the kernel killing the
// process.
//
// The same binary holds the mistakes learners typically make, selected at run
// time with MEMLIMIT_BUG (see README.md). Unset or empty means correct.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const maxBody = 8 << 20

// cgroupLimit is the container's memory limit in bytes, from cgroup v2's
// memory.max or cgroup v1's memory.limit_in_bytes; 0 when there is none.
func cgroupLimit(v variant) int64 {
	if v.hostMemory {
		return hostMemory()
	}
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		// cgroup v1 says "no limit" with a huge number.
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0
		}
		return n
	}
	return 0
}

// hostMemory is the machine's memory from /proc/meminfo (the host-memory
// mistake: a container sees the host's total there, not its own limit).
func hostMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kib, _ := strconv.ParseInt(f[1], 10, 64)
			return kib << 10
		}
	}
	return 0
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readBody reads at most maxBody bytes into a slice of exactly their size.
func readBody(r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= maxBody {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if n > maxBody {
		return nil, errors.New("body over 8 MiB")
	}
	return buf.Bytes(), nil
}

type store struct {
	mu   sync.Mutex
	docs map[string][]byte
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	v, err := parseVariant(os.Getenv("MEMLIMIT_BUG"))
	if err != nil {
		log.Fatalf("MEMLIMIT_BUG: %v", err)
	}
	limit := cgroupLimit(v)
	if limit > 0 && os.Getenv("GOMEMLIMIT") == "" && !v.noMemLimit {
		debug.SetMemoryLimit(limit / 10 * 9)
	}
	goLimit := debug.SetMemoryLimit(-1)
	log.Printf("cgroup memory limit %d bytes; Go memory limit %d bytes", limit, goLimit)
	if v.name != "" {
		log.Printf("variant %q: %s", v.name, v.description)
	}

	st := &store{docs: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		var cg any
		if limit > 0 {
			cg = limit
		}
		writeJSON(w, http.StatusOK, map[string]any{"cgroup_limit_bytes": cg, "go_memory_limit_bytes": debug.SetMemoryLimit(-1)})
	})
	mux.HandleFunc("PUT /docs/{id}", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
			return
		}
		st.mu.Lock()
		st.docs[r.PathValue("id")] = body
		n := len(st.docs)
		st.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"id": r.PathValue("id"), "bytes": len(body), "docs": n})
	})
	mux.HandleFunc("DELETE /docs", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		st.docs = map[string][]byte{}
		st.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /transform", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
			return
		}
		up := bytes.ToUpper(body)
		sum := sha256.Sum256(up)
		writeJSON(w, http.StatusOK, map[string]any{"bytes": len(up), "sha256": hex.EncodeToString(sum[:])})
	})
	mux.Handle("GET /debug/vars", expvar.Handler())

	srv := &http.Server{Addr: ":" + envOr("PORT", "8080"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if goLimit == math.MaxInt64 {
		log.Printf("no Go memory limit: the heap may grow to twice the live data before a collection")
	}
	log.Printf("listening on %s", srv.Addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(fmt.Errorf("serving: %w", err))
	}
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}
