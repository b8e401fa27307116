package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

const (
	leaderHeader    = "X-Raft-Leader"
	forwardedHeader = "X-Textkv-Forwarded-By"
	maxValue        = 1 << 20
)

// handler routes by hand: built in GOPATH mode, Go keeps the Go 1.21 ServeMux.
//
//	GET /metrics            Prometheus text format
//	GET /status             plain text, one "name: value" a line
//	GET|PUT|POST|DELETE /kv/<key> and /<key>
func (s *store) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: 200}
		if id := s.leaderID(); id != "" {
			rec.Header().Set(leaderHeader, id)
		}
		s.route(rec, r)
		s.stats.observe(r.Method, rec.status)
		if r.URL.Path != "/metrics" && r.URL.Path != "/status" {
			log.Printf("%s %s -> %d in %s%s", r.Method, r.URL.RequestURI(), rec.status, time.Since(start).Round(100*time.Microsecond), rec.note)
		}
	})
}

func (s *store) route(w *recorder, r *http.Request) {
	path := r.URL.EscapedPath()
	switch path {
	case "/metrics":
		s.metrics(w, r)
		return
	case "/status":
		s.status(w)
		return
	case "/", "/kv", "/kv/":
		text(w, http.StatusNotFound, "textkv "+version+": GET, PUT or DELETE /kv/<key> (or /<key>); GET /status, /metrics\n")
		return
	}
	rest := strings.TrimPrefix(path, "/")
	if strings.HasPrefix(rest, "kv/") {
		rest = strings.TrimPrefix(rest, "kv/")
	}
	if rest == "" || strings.Contains(rest, "/") {
		text(w, http.StatusNotFound, "no such route\n")
		return
	}
	key, err := url.PathUnescape(rest)
	if err != nil || key == "" {
		text(w, http.StatusBadRequest, "bad key\n")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.read(w, r, key)
	case http.MethodPut, http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxValue+1))
		if err != nil {
			text(w, http.StatusBadRequest, "could not read the body\n")
			return
		}
		if len(body) > maxValue {
			text(w, http.StatusRequestEntityTooLarge, "values are at most 1 MiB\n")
			return
		}
		s.write(w, r, entry{Op: "set", Key: key, Value: body}, body)
	case http.MethodDelete:
		s.write(w, r, entry{Op: "del", Key: key}, nil)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, POST, DELETE")
		text(w, http.StatusMethodNotAllowed, "method not allowed\n")
	}
}

func (s *store) read(w *recorder, r *http.Request, key string) {
	if !s.o.localReads {
		if !s.isLeader() {
			s.toLeader(w, r, nil)
			return
		}
		if err := s.confirmLeader(); err != nil {
			s.failed(w, r, nil, err, true)
			return
		}
	}
	v, ok := s.fsm.get(key)
	if !ok {
		text(w, http.StatusNotFound, "not found\n")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(v)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(v)
	}
}

func (s *store) write(w *recorder, r *http.Request, e entry, body []byte) {
	if !s.isLeader() {
		s.toLeader(w, r, body)
		return
	}
	if err := s.set(e); err != nil {
		s.failed(w, r, body, err, false)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// failed answers for an operation the leader did not complete.
func (s *store) failed(w *recorder, r *http.Request, body []byte, err error, read bool) {
	if err == raft.ErrNotLeader && r.Header.Get(forwardedHeader) == "" {
		// Nothing was enqueued: the request can go to the new leader.
		s.toLeader(w, r, body)
		return
	}
	msg := err.Error()
	switch {
	case err == errTimeout && read:
		msg = "could not confirm leadership in time"
	case err == errTimeout:
		msg = "not committed in time; the write may still take effect"
	case err == raft.ErrLeadershipLost && !read:
		msg = "leadership lost; the write may still take effect"
	}
	text(w, http.StatusServiceUnavailable, msg+"\n")
}

// toLeader forwards the request to the leader, or with --redirect points the
// client at it.
func (s *store) toLeader(w *recorder, r *http.Request, body []byte) {
	if by := r.Header.Get(forwardedHeader); by != "" {
		text(w, http.StatusServiceUnavailable, "not the leader (forwarded here by "+by+")\n")
		return
	}
	deadline := time.Now().Add(s.o.tuning.requestTimeout)
	for {
		id := s.leaderID()
		addr := ""
		if id != "" {
			addr = s.fsm.apiOf(id)
		}
		if id == s.o.id && s.isLeader() {
			// Elected meanwhile.
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				s.read(w, r, keyOf(r))
			} else if r.Method == http.MethodDelete {
				s.write(w, r, entry{Op: "del", Key: keyOf(r)}, nil)
			} else {
				s.write(w, r, entry{Op: "set", Key: keyOf(r), Value: body}, body)
			}
			return
		}
		if id == "" || id == s.o.id || addr == "" {
			if time.Now().After(deadline) {
				text(w, http.StatusServiceUnavailable, "no leader known\n")
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if s.o.redirect {
			w.Header().Set(leaderHeader, id)
			w.Header().Set("Location", "http://"+addr+r.URL.RequestURI())
			w.note = " (redirect to " + id + ")"
			text(w, http.StatusTemporaryRedirect, "not the leader; the leader is "+id+"\n")
			return
		}
		resp, err := s.forward(r, addr, body)
		if err == nil {
			w.note = " (forwarded to " + id + ")"
			relay(w, resp)
			return
		}
		if isDial(err) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		msg := fmt.Sprintf("forwarding to the leader %s: %v", id, err)
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !isDial(err) {
			msg += "; the write may still take effect"
		}
		text(w, http.StatusServiceUnavailable, msg+"\n")
		return
	}
}

func keyOf(r *http.Request) string {
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "kv/")
	k, _ := url.PathUnescape(rest)
	return k
}

func (s *store) forward(r *http.Request, addr string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(r.Method, "http://"+addr+r.URL.RequestURI(), rd)
	if err != nil {
		return nil, err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set(forwardedHeader, s.o.id)
	return s.client.Do(req)
}

func relay(w http.ResponseWriter, resp *http.Response) {
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Content-Length", leaderHeader, "Location"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func isDial(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// status is a plain-text page: "name: value" lines.
func (s *store) status(w *recorder) {
	st := s.raft.Stats()
	leader := s.leaderID()
	if leader == "" {
		leader = "none"
	}
	conf := s.o.confPath
	if conf == "" {
		conf = "none (raft defaults)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "id: %s\n", s.o.id)
	fmt.Fprintf(&b, "state: %s\n", s.raft.State())
	fmt.Fprintf(&b, "leader: %s\n", leader)
	fmt.Fprintf(&b, "term: %s\n", st["term"])
	fmt.Fprintf(&b, "commit_index: %s\n", st["commit_index"])
	fmt.Fprintf(&b, "applied_index: %s\n", st["applied_index"])
	fmt.Fprintf(&b, "last_contact: %s\n", st["last_contact"])
	fmt.Fprintf(&b, "keys: %d\n", s.fsm.size())
	fmt.Fprintf(&b, "conf: %s\n", conf)
	fmt.Fprintf(&b, "version: %s\n", version)
	text(w, http.StatusOK, b.String())
}

type recorder struct {
	http.ResponseWriter
	status int
	note   string
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, body)
}
