package main

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type counters struct {
	requests *prometheus.CounterVec
	handler  http.Handler
}

func newCounters() *counters {
	return &counters{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "textkv_http_requests_total",
		Help: "HTTP requests answered, by method and status code.",
	}, []string{"method", "code"})}
}

func (c *counters) observe(method string, code int) {
	c.requests.WithLabelValues(method, strconv.Itoa(code)).Inc()
}

// raftCollector reports raft's state at each scrape.
type raftCollector struct{ s *store }

var (
	descIsLeader = prometheus.NewDesc("textkv_is_leader", "1 when this node is the raft leader, else 0.", nil, nil)
	descState    = prometheus.NewDesc("textkv_raft_state", "1 for this node's current raft state.", []string{"state"}, nil)
	descTerm     = prometheus.NewDesc("textkv_raft_term", "The current raft term.", nil, nil)
	descCommit   = prometheus.NewDesc("textkv_raft_commit_index", "The last committed log index.", nil, nil)
	descApplied  = prometheus.NewDesc("textkv_raft_applied_index", "The last log index applied to the store.", nil, nil)
	descKeys     = prometheus.NewDesc("textkv_keys", "Keys in this node's copy of the store.", nil, nil)
	descInfo     = prometheus.NewDesc("textkv_build_info", "Always 1.", []string{"version", "node"}, nil)
)

func (c raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIsLeader, descState, descTerm, descCommit, descApplied, descKeys, descInfo} {
		ch <- d
	}
}

func (c raftCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.raft.Stats()
	state := c.s.raft.State()
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	num := func(k string) float64 {
		v, _ := strconv.ParseUint(st[k], 10, 64)
		return float64(v)
	}
	ch <- prometheus.MustNewConstMetric(descIsLeader, prometheus.GaugeValue, b(state == raft.Leader))
	for _, s := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, b(state == s), strings.ToLower(s.String()))
	}
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, num("term"))
	ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, num("commit_index"))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, num("applied_index"))
	ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(c.s.fsm.size()))
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, version, c.s.o.id)
}

func (s *store) initMetrics() {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), s.stats.requests, raftCollector{s})
	s.stats.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func (s *store) metrics(w *recorder, r *http.Request) {
	s.stats.handler.ServeHTTP(w, r)
}
