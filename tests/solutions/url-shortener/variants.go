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

	noRateLimit     bool // the limiter exists but is never wired in front of the handler
	globalRateLimit bool // the limiter key does not depend on the client
	memoryStore     bool // links live in a Go map, not in Redis
	redis500        bool // Redis failures are reported as 500
	redisHang       bool // Redis client without timeouts that retries until Redis answers
	redirect301     bool // permanent redirect
	noRetryAfter    bool // 429 without Retry-After
	acceptAnyURL    bool // any non-empty string is accepted as a URL
}

var variants = map[string]variant{
	"no-rate-limit": {
		description: "the rate limiter is never applied to POST /api/links",
		noRateLimit: true,
	},
	"global-rate-limit": {
		description:     "one rate-limit bucket shared by all clients",
		globalRateLimit: true,
	},
	"memory": {
		description: "links are kept in a Go map in process memory, lost on restart",
		memoryStore: true,
	},
	"redis-500": {
		description: "Redis errors are answered with 500 instead of 503",
		redis500:    true,
	},
	"redis-hang": {
		description: "Redis client without timeouts, retrying until Redis answers (requests hang while Redis is down)",
		redisHang:   true,
	},
	"redirect-301": {
		description: "redirects answer 301 Moved Permanently instead of 302",
		redirect301: true,
	},
	"no-retry-after": {
		description:  "429 is answered without a Retry-After header",
		noRetryAfter: true,
	},
	"accept-any-url": {
		description:  "any non-empty string is accepted as a URL",
		acceptAnyURL: true,
	},
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
