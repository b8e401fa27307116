package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"strings"
	"time"
)

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func newAPI(s *store, b *broker, bug variant) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !b.connected() {
			fail(w, http.StatusServiceUnavailable, errUnavailable.Error())
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/orders", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			fail(w, http.StatusMethodNotAllowed, "POST an order")
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			fail(w, http.StatusBadRequest, "could not read the body")
			return
		}
		o, err := parseOrder(body)
		if err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		if bug.knownFirst {
			// The mistake: the id is made known before RabbitMQ has the order.
			fresh, err := s.claim(o.ID)
			if err != nil {
				fail(w, http.StatusServiceUnavailable, err.Error())
				return
			}
			if !fresh {
				writeJSON(w, http.StatusAccepted, map[string]string{"id": o.ID, "status": "queued"})
				return
			}
		}
		// A broker under load (a slow disk syncing persistent messages) can take
		// seconds to confirm; 503 only after 8 s (the README's bound).
		ctx, cancel := context.WithTimeout(r.Context(), 8*time.Second)
		defer cancel()
		if err := b.publish(ctx, exchangeName, routingKey, body, nil, !bug.transient, !bug.noConfirm); err != nil {
			if errors.Is(err, errUnavailable) {
				fail(w, http.StatusServiceUnavailable, err.Error())
			} else {
				fail(w, http.StatusInternalServerError, err.Error())
			}
			return
		}
		// After the publish: if the worker was quicker, the order is already done
		// and stays so. The order is safe in RabbitMQ now: a Redis that does not
		// answer must not hold back the 202, so this waits 200 ms at most (the
		// record is made later, or the worker's record replaces it).
		recorded := make(chan error, 1)
		go func() { recorded <- s.queued(o) }()
		select {
		case err := <-recorded:
			if err != nil {
				log.Printf("order %s: recording it as queued: %v", o.ID, err)
			}
		case <-time.After(200 * time.Millisecond):
			log.Printf("order %s: Redis is slow to record it as queued; answering anyway", o.ID)
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"id": o.ID, "status": "queued"})
	})
	mux.HandleFunc("/orders/", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/orders/")
		if r.Method != http.MethodGet || id == "" || strings.Contains(id, "/") {
			fail(w, http.StatusNotFound, "GET /orders/{id}")
			return
		}
		st, err := s.get(id)
		if err != nil {
			fail(w, http.StatusServiceUnavailable, "Redis: "+err.Error())
			return
		}
		if st == nil {
			fail(w, http.StatusNotFound, "unknown order")
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("/stats/", func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/stats/")
		if r.Method != http.MethodGet || p == "" || strings.Contains(p, "/") {
			fail(w, http.StatusNotFound, "GET /stats/{product}")
			return
		}
		st, err := s.stats(p)
		if err != nil {
			fail(w, http.StatusServiceUnavailable, "Redis: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	return mux
}
