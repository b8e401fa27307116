package main

import (
	"fmt"
	"sort"
	"strings"
)

// variant describes which learner mistake, if any, this process reproduces.
// The zero value is the correct service.
type variant struct {
	name        string
	description string

	counterAsGauge        bool // http_requests_total declared as a gauge
	noMethodLabel         bool // http_requests_total without the method label
	milliseconds          bool // latency observed in milliseconds into a seconds histogram
	gaugeNeverDecremented bool // logout does not decrement active_users_count
	errorsAs200           bool // the code label is always "200", so errors never show
	metricsHang           bool // GET /metrics never answers
	metricsFlood          bool // GET /metrics answers 64 MB of text
}

var variants = map[string]variant{
	"counter-as-gauge": {
		description:    "http_requests_total is declared as a gauge, not a counter",
		counterAsGauge: true,
	},
	"no-method-label": {
		description:   "http_requests_total has no method label",
		noMethodLabel: true,
	},
	"milliseconds": {
		description:  "request durations are observed in milliseconds into request_duration_seconds",
		milliseconds: true,
	},
	"gauge-never-decremented": {
		description:           "logout never decrements active_users_count",
		gaugeNeverDecremented: true,
	},
	"errors-as-200": {
		description: "the code label is always 200, so 5xx answers are counted as successes",
		errorsAs200: true,
	},
	"metrics-flood": {
		description:  "GET /metrics answers 64 MB of text",
		metricsFlood: true,
	},
	"metrics-hang": {
		description: "GET /metrics never answers",
		metricsHang: true,
	},
}

func selectVariant(name string) (variant, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return variant{}, nil
	}
	v, ok := variants[name]
	if !ok {
		var known []string
		for k := range variants {
			known = append(known, k)
		}
		sort.Strings(known)
		return variant{}, fmt.Errorf("MONITORING_BUG=%q is unknown; known: %s", name, strings.Join(known, ", "))
	}
	v.name = name
	return v, nil
}
