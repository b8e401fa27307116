package main

import (
	"fmt"
	"sort"
	"strings"
)

// variant is which learner mistake, if any, this process reproduces.
type variant struct {
	name        string
	description string

	perInstance    bool // the window lives in each process's memory
	fixedWindow    bool // counters per fixed bucket of time
	nonAtomic      bool // count and add in separate round trips
	noTTL          bool // keys never expire
	globalKey      bool // one key for every client
	noRetryAfter   bool // 429 without Retry-After
	noRedisTimeout bool // no deadline on Redis: hangs while Redis does
	failClosed     bool // 503 while Redis is down, against the contract
	singleConn     bool // one Redis connection for ever, never redialled
}

var variants = map[string]variant{
	"per-instance":     {description: "a sliding window kept in each instance's memory", perInstance: true},
	"fixed-window":     {description: "a counter per fixed window of time (INCR + PEXPIRE)", fixedWindow: true},
	"non-atomic":       {description: "the count is read, then the request added, in separate commands", nonAtomic: true},
	"no-ttl":           {description: "the clients' keys are never given an expiry", noTTL: true},
	"global-key":       {description: "one window for every client (keyed by the route)", globalKey: true},
	"no-retry-after":   {description: "429 without Retry-After", noRetryAfter: true},
	"no-redis-timeout": {description: "no timeouts on Redis: requests hang while Redis does", noRedisTimeout: true},
	"fail-closed":      {description: "503 while Redis cannot be reached", failClosed: true},
	"single-conn":      {description: "one Redis connection dialled at start and never replaced after it failed", singleConn: true},
}

func parseVariant(s string) (variant, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return variant{}, nil
	}
	v, ok := variants[s]
	if !ok {
		names := make([]string, 0, len(variants))
		for n := range variants {
			names = append(names, n)
		}
		sort.Strings(names)
		return variant{}, fmt.Errorf("unknown variant %q (known: %s)", s, strings.Join(names, ", "))
	}
	v.name = s
	return v, nil
}
