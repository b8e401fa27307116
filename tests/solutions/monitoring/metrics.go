package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	v           variant
	requests    *prometheus.CounterVec // http_requests_total{method, code}
	requestsG   *prometheus.GaugeVec   // the counter-as-gauge mistake
	duration    prometheus.Histogram   // request_duration_seconds
	activeUsers prometheus.Gauge       // active_users_count
}

func newMetrics(reg prometheus.Registerer, v variant) *metrics {
	labels := []string{"method", "code"}
	if v.noMethodLabel {
		labels = []string{"code"}
	}
	m := &metrics{v: v}
	if v.counterAsGauge {
		m.requestsG = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "http_requests_total", Help: "HTTP requests answered, by method and status code."}, labels)
		reg.MustRegister(m.requestsG)
	} else {
		m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "HTTP requests answered, by method and status code."}, labels)
		reg.MustRegister(m.requests)
	}
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "request_duration_seconds",
		Help:    "Time taken to answer HTTP requests, in seconds.",
		Buckets: prometheus.DefBuckets,
	})
	m.activeUsers = prometheus.NewGauge(prometheus.GaugeOpts{Name: "active_users_count", Help: "Users logged in now."})
	reg.MustRegister(m.duration, m.activeUsers)
	return m
}

// recorder keeps the status code a handler wrote.
type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// instrument counts each request by method and status code and observes its duration.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		took := time.Since(start)
		code := strconv.Itoa(rec.code)
		if m.v.errorsAs200 {
			code = "200"
		}
		values := []string{r.Method, code}
		if m.v.noMethodLabel {
			values = []string{code}
		}
		if m.requestsG != nil {
			m.requestsG.WithLabelValues(values...).Inc()
		} else {
			m.requests.WithLabelValues(values...).Inc()
		}
		if m.v.milliseconds {
			m.duration.Observe(float64(took.Milliseconds()))
		} else {
			m.duration.Observe(took.Seconds())
		}
	})
}
