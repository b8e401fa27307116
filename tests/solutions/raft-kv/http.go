package main

import (
	"bytes"
	"encoding/json"
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

// forwardedHeader marks a request a follower forwarded to the leader. A node that
// gets such a request and is not the leader answers 503 instead of forwarding it
// again, so two nodes with different ideas of the leader cannot bounce it.
const forwardedHeader = "X-Forwarded-By"

// op is one parsed key-value request.
type op struct {
	kind  string // get, put, delete, cas
	key   string
	value string // put
	from  string // cas
	to    string // cas
	body  []byte // the request body as received, for forwarding
}

func (o op) isRead() bool { return o.kind == "get" }

func (o op) command() command {
	switch o.kind {
	case "put":
		return command{Op: "put", Key: o.key, Value: o.value}
	case "delete":
		return command{Op: "delete", Key: o.key}
	default:
		return command{Op: "cas", Key: o.key, From: o.from, To: o.to}
	}
}

// The routes are matched by hand: built in GOPATH mode (no go.mod), Go 1.22+
// keeps the Go 1.21 ServeMux, which has no method or {wildcard} patterns.
func (n *node) routes() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		n.dispatch(rec, r)
		if r.URL.Path != "/healthz" {
			log.Printf("%s %s -> %d in %s%s", r.Method, r.URL.RequestURI(), rec.status,
				time.Since(start).Round(100*time.Microsecond), rec.note)
		}
	})
}

func (n *node) dispatch(w *recorder, r *http.Request) {
	path := r.URL.EscapedPath()
	switch {
	case path == "/healthz":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case path == "/status":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		n.status(w)
	case strings.HasPrefix(path, "/kv/"):
		rest := strings.TrimPrefix(path, "/kv/")
		cas := false
		if strings.HasSuffix(rest, "/cas") {
			rest, cas = strings.TrimSuffix(rest, "/cas"), true
		}
		if rest == "" || strings.Contains(rest, "/") {
			writeError(w, http.StatusNotFound, "no such route")
			return
		}
		key, err := url.PathUnescape(rest)
		if err != nil || key == "" {
			writeError(w, http.StatusBadRequest, "bad key in path")
			return
		}
		o, status, msg := parseOp(r, key, cas)
		if status != 0 {
			if status == http.StatusMethodNotAllowed {
				methodNotAllowed(w, msg)
				return
			}
			writeError(w, status, msg)
			return
		}
		n.handle(w, r, o)
	default:
		writeError(w, http.StatusNotFound, "no such route")
	}
}

// parseOp validates a request before anything else happens, so a bad request is
// answered 400 by whichever node gets it. On failure it returns a status and a
// message (for 405 the message is the Allow header).
func parseOp(r *http.Request, key string, cas bool) (op, int, string) {
	o := op{key: key}
	if cas {
		if r.Method != http.MethodPost {
			return o, http.StatusMethodNotAllowed, "POST"
		}
		o.kind = "cas"
	} else {
		switch r.Method {
		case http.MethodGet:
			o.kind = "get"
		case http.MethodPut:
			o.kind = "put"
		case http.MethodDelete:
			o.kind = "delete"
		default:
			return o, http.StatusMethodNotAllowed, "GET, PUT, DELETE"
		}
	}
	if o.kind == "get" || o.kind == "delete" {
		return o, 0, ""
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil {
		return o, http.StatusBadRequest, "could not read the body"
	}
	if len(body) > 1<<20 {
		return o, http.StatusRequestEntityTooLarge, "body larger than 1 MiB"
	}
	o.body = body
	if o.kind == "put" {
		var b struct {
			Value *string `json:"value"`
		}
		if err := json.Unmarshal(body, &b); err != nil || b.Value == nil {
			return o, http.StatusBadRequest, `body must be a JSON object {"value": "<string>"}`
		}
		o.value = *b.Value
		return o, 0, ""
	}
	var b struct {
		From *string `json:"from"`
		To   *string `json:"to"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.From == nil || b.To == nil {
		return o, http.StatusBadRequest, `body must be a JSON object {"from": "<string>", "to": "<string>"}`
	}
	o.from, o.to = *b.From, *b.To
	return o, 0, ""
}

// handle decides where an operation is served: here (leader), at the leader
// (forward or redirect), or, in the buggy variants, somewhere it should not be.
func (n *node) handle(w *recorder, r *http.Request, o op) {
	switch {
	case n.v.noForward:
		// The mistake: hand everything to raft whatever this node's role is.
		n.local(w, r, o)
	case o.isRead() && n.v.staleReads:
		// The mistake: any node reads its own copy, which may be behind the leader's.
		n.reply(w, o, result{ok: true, value: n.get(o.key)})
	case n.isLeader():
		n.local(w, r, o)
	default:
		n.notLeader(w, r, o)
	}
}

func (n *node) get(key string) *string {
	if v, ok := n.fsm.get(key); ok {
		return &v
	}
	return nil
}

// local serves an operation on this node, which believes it is the leader.
func (n *node) local(w *recorder, r *http.Request, o op) {
	w.Header().Set("X-Served-By", n.cfg.nodeID)
	deadline := time.Now().Add(opTimeout)

	if o.isRead() {
		// A barrier is a log entry: once it is applied, this node was still the
		// leader when it committed and every earlier entry, including writes
		// acknowledged by earlier leaders, is in the map.
		if err := waitFuture(n.raft.Barrier(opTimeout), opTimeout); err != nil {
			n.raftError(w, r, o, err)
			return
		}
		n.reply(w, o, result{ok: true, value: n.get(o.key)})
		return
	}

	if n.v.ackBeforeCommit {
		n.ackBeforeCommit(w, o)
		return
	}

	data, err := json.Marshal(o.command())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	f := n.raft.Apply(data, opTimeout)
	if err := waitFuture(f, time.Until(deadline)); err != nil {
		n.raftError(w, r, o, err)
		return
	}
	res, _ := f.Response().(result)
	n.reply(w, o, res)
}

// ackBeforeCommit is the ack-before-commit mistake: the leader changes its own
// map at once, hands the change to raft and answers without waiting for the
// commit. If this leader dies or is cut off before the entry reaches a majority,
// the acknowledged write is gone (and this node's map disagrees with the log).
func (n *node) ackBeforeCommit(w *recorder, o op) {
	res := n.fsm.apply(o.command())
	if o.kind == "cas" && !res.ok {
		n.reply(w, o, res)
		return
	}
	c := o.command()
	if o.kind == "cas" {
		c = command{Op: "put", Key: o.key, Value: o.to}
	}
	data, _ := json.Marshal(c)
	n.raft.Apply(data, opTimeout) // the future is dropped
	n.reply(w, o, res)
}

// raftError answers for an operation raft did not complete.
func (n *node) raftError(w *recorder, r *http.Request, o op, err error) {
	if n.v.noForward {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if err == raft.ErrNotLeader && r.Header.Get(forwardedHeader) == "" {
		// Leadership moved between the check and the call; nothing was enqueued,
		// so sending it to the new leader is safe.
		w.Header().Del("X-Served-By")
		n.notLeader(w, r, o)
		return
	}
	var msg string
	switch {
	case err == errTimeout && o.isRead():
		msg = fmt.Sprintf("could not confirm leadership within %s", opTimeout)
	case err == errTimeout:
		msg = fmt.Sprintf("not committed within %s; the write may or may not take effect", opTimeout)
	case err == raft.ErrLeadershipLost && !o.isRead():
		msg = "leadership lost before the write committed; it may or may not take effect"
	default:
		msg = err.Error()
	}
	writeError(w, http.StatusServiceUnavailable, msg)
}

func (n *node) reply(w *recorder, o op, res result) {
	switch {
	case res.err != nil:
		writeError(w, http.StatusInternalServerError, res.err.Error())
	case o.kind == "get" && res.value == nil:
		writeError(w, http.StatusNotFound, "not found")
	case o.kind == "delete":
		writeJSON(w, http.StatusOK, struct{}{})
	case o.kind == "cas" && !res.ok:
		writeJSON(w, http.StatusConflict, map[string]interface{}{
			"error": "current value is not the expected one",
			"value": res.value,
		})
	default:
		writeJSON(w, http.StatusOK, map[string]interface{}{"value": res.value})
	}
}

// notLeader sends the client, or its request, to the leader.
func (n *node) notLeader(w *recorder, r *http.Request, o op) {
	if r.Header.Get(forwardedHeader) != "" {
		writeError(w, http.StatusServiceUnavailable,
			"not the leader (request forwarded by "+r.Header.Get(forwardedHeader)+")")
		return
	}
	deadline := time.Now().Add(opTimeout)
	for {
		id := n.leaderID()
		switch {
		case id == "" || (id == n.cfg.nodeID && !n.isLeader()):
			// No leader yet (election under way): wait a little for one.
			if time.Now().After(deadline) {
				writeError(w, http.StatusServiceUnavailable, "no leader known")
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		case id == n.cfg.nodeID:
			n.local(w, r, o)
			return
		}

		p, _ := n.cfg.peer(id)
		if n.cfg.redirect {
			w.Header().Set("X-Leader", id)
			w.Header().Set("Location", p.httpURL+r.URL.RequestURI())
			w.note = " (redirect to " + id + ")"
			writeJSON(w, http.StatusTemporaryRedirect, map[string]string{"error": "not the leader", "leader": id})
			return
		}

		resp, err := n.forward(r, o, p)
		if err == nil {
			w.note = " (forwarded to " + id + ")"
			relay(w, resp)
			return
		}
		// Only a failed dial is retried: the leader never saw the request. Any
		// later failure may hide a write that did happen.
		if isDialError(err) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		msg := fmt.Sprintf("forwarding to the leader %s: %v", id, err)
		if !o.isRead() && !isDialError(err) {
			msg += "; the write may or may not take effect"
		}
		writeError(w, http.StatusServiceUnavailable, msg)
		return
	}
}

func (n *node) forward(r *http.Request, o op, p peer) (*http.Response, error) {
	var body io.Reader
	if o.body != nil {
		body = bytes.NewReader(o.body)
	}
	req, err := http.NewRequest(r.Method, p.httpURL+r.URL.RequestURI(), body)
	if err != nil {
		return nil, err
	}
	if o.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(forwardedHeader, n.cfg.nodeID)
	return n.client.Do(req)
}

func relay(w http.ResponseWriter, resp *http.Response) {
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "X-Served-By", "X-Leader", "Location"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

type statusBody struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastLogIndex uint64 `json:"last_log_index"`
	Keys         int    `json:"keys"`
}

func (n *node) status(w *recorder) {
	st := n.raft.Stats()
	num := func(k string) uint64 {
		v, _ := strconv.ParseUint(st[k], 10, 64)
		return v
	}
	writeJSON(w, http.StatusOK, statusBody{
		ID:           n.cfg.nodeID,
		State:        n.raft.State().String(),
		Leader:       n.leaderID(),
		Term:         num("term"),
		CommitIndex:  num("commit_index"),
		AppliedIndex: num("applied_index"),
		LastLogIndex: num("last_log_index"),
		Keys:         n.fsm.size(),
	})
}

// recorder remembers the status for the request log.
type recorder struct {
	http.ResponseWriter
	status int
	note   string
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method not allowed")
}
