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

	noBreaker     bool // every call goes to the upstream
	neverHalfOpen bool // once open, open for ever
	halfOpenAll   bool // half-open lets every call through, not one trial
	slowIsFailure bool // a success slower than 200 ms counts as a failure
	noTimeout     bool // http.DefaultClient: no deadline on the upstream call
}

var variants = map[string]variant{
	"no-breaker":      {description: "every call goes to the upstream; /breaker always says closed", noBreaker: true},
	"never-half-open": {description: "once open, the breaker never lets a trial call through", neverHalfOpen: true},
	"half-open-all":   {description: "half-open lets every call through instead of one trial", halfOpenAll: true},
	"slow-is-failure": {description: "a successful call slower than 200 ms counts as a failure", slowIsFailure: true},
	"no-timeout":      {description: "upstream calls through http.DefaultClient, without a deadline", noTimeout: true},
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
