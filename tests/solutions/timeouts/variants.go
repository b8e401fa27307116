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

	defaultClient     bool // http.DefaultClient: no deadline at all
	headerTimeoutOnly bool // only Transport.ResponseHeaderTimeout: a trickling body is read for ever
	leak              bool // a goroutine per call sends on an unbuffered channel nobody reads after a timeout
	newTransport      bool // a new Transport per request: no connection is ever reused
	defaultTransport  bool // http.DefaultTransport: 2 idle connections per host
	backgroundCtx     bool // the deadline hangs off context.Background, not the request's context
}

var variants = map[string]variant{
	"default-client":      {description: "upstream calls through http.DefaultClient, without a deadline", defaultClient: true},
	"header-timeout-only": {description: "only ResponseHeaderTimeout: a body that trickles in is read for ever", headerTimeoutOnly: true},
	"leak":                {description: "a goroutine per call blocks for ever on an unbuffered channel once the handler gave up", leak: true},
	"new-transport":       {description: "a new http.Transport per request: every call opens a new connection", newTransport: true},
	"default-transport":   {description: "http.DefaultTransport, 2 idle connections per host", defaultTransport: true},
	"background-ctx":      {description: "the call's deadline hangs off context.Background: a client that leaves does not cancel it", backgroundCtx: true},
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
