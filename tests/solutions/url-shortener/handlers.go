package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const maxBodyBytes = 64 << 10

type app struct {
	cfg     config
	v       variant
	links   linkStore
	limiter *fixedWindow // nil: creations are not limited
}

func newApp(cfg config, v variant, db *redisDB) *app {
	a := &app{cfg: cfg, v: v}

	if v.memoryStore {
		a.links = newMemLinks()
	} else {
		a.links = redisLinks{db: db}
	}

	if !v.noRateLimit {
		a.limiter = &fixedWindow{db: db, limit: cfg.rateLimit, window: cfg.rateWindow}
	}
	return a
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", a.healthz)
	mux.HandleFunc("/api/links", a.createLink)
	mux.HandleFunc("/", a.redirect)
	return logRequests(mux)
}

// GET /healthz: never touches Redis.
func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type createRequest struct {
	URL *string `json:"url"`
}

type createResponse struct {
	Code     string `json:"code"`
	ShortURL string `json:"short_url"`
	URL      string `json:"url"`
}

// POST /api/links
func (a *app) createLink(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost) {
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		writeError(w, http.StatusBadRequest, "could not read body")
		return
	}
	var req createRequest
	if err := json.Unmarshal(body, &req); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field == "url":
			writeError(w, http.StatusBadRequest, "url must be a string")
		case errors.As(err, &typeErr):
			writeError(w, http.StatusBadRequest, "body must be a JSON object")
		default:
			writeError(w, http.StatusBadRequest, "body is not valid JSON")
		}
		return
	}
	if req.URL == nil || *req.URL == "" {
		writeError(w, http.StatusBadRequest, "missing url")
		return
	}
	target := *req.URL
	if !a.v.acceptAnyURL {
		if why := checkURL(target); why != "" {
			writeError(w, http.StatusBadRequest, why)
			return
		}
	}

	// Only well-formed requests count as creations against the limit.
	if a.limiter != nil {
		ok, wait, err := a.limiter.allow(r.Context(), a.rateKey(r))
		if err != nil {
			a.storageFailed(w, r, err)
			return
		}
		if !ok {
			if !a.v.noRetryAfter {
				w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(wait), 10))
			}
			writeError(w, http.StatusTooManyRequests, "rate limit exceeded")
			return
		}
	}

	code, err := a.links.create(r.Context(), target)
	if err != nil {
		a.storageFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, createResponse{
		Code:     code,
		ShortURL: a.cfg.baseURL + "/" + code,
		URL:      target,
	})
}

// rateKey names the counter that this request is charged to.
func (a *app) rateKey(r *http.Request) string {
	if a.v.globalRateLimit {
		// The mistake: one counter per endpoint, whoever is calling.
		return "rate:" + r.URL.Path
	}
	return "rate:" + clientIP(r)
}

// GET /{code}
func (a *app) redirect(w http.ResponseWriter, r *http.Request) {
	code := strings.TrimPrefix(r.URL.Path, "/")
	if code == "" || strings.Contains(code, "/") {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	target, found, err := a.links.lookup(r.Context(), code)
	if err != nil {
		a.storageFailed(w, r, err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, "unknown code")
		return
	}
	status := http.StatusFound // not 301: browsers cache permanent redirects
	if a.v.redirect301 {
		status = http.StatusMovedPermanently
	}
	w.Header().Set("Location", target)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

// storageFailed answers a request whose storage operation failed.
func (a *app) storageFailed(w http.ResponseWriter, r *http.Request, err error) {
	log.Printf("%s %s: storage error: %v", r.Method, r.URL.Path, err)
	if a.v.redis500 {
		writeError(w, http.StatusInternalServerError, "internal server error")
		return
	}
	writeError(w, http.StatusServiceUnavailable, "storage unavailable, try again later")
}

// checkURL returns why s is not an absolute http(s) URL with a host, or "".
func checkURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "url is not a valid URL"
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "url must be an absolute http or https URL"
	}
	if u.Host == "" || u.Hostname() == "" {
		return "url must have a host"
	}
	return ""
}

// clientIP identifies the client: the first address of X-Forwarded-For when
// present, otherwise the IP of the TCP peer.
func clientIP(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		if first = strings.TrimSpace(first); first != "" {
			return first
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		log.Printf("encode response: %v", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal server error"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// statusRecorder remembers the status code for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		log.Printf("%s %s %s %d %s", clientIP(r), r.Method, r.URL.RequestURI(), rec.status,
			time.Since(start).Round(time.Microsecond))
	})
}
