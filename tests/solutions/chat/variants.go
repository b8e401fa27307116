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

	localOnly      bool // messages go to this instance's clients only; Redis is never used
	noOriginCheck  bool // any Origin may open a WebSocket
	blockingHub    bool // the hub waits for each client's buffer, and writes have no deadline
	noPing         bool // no pings and no read deadline: dead clients stay forever
	noResubscribe  bool // the subscription is not made again after Redis goes away
	doubleDelivery bool // local broadcast and Redis both deliver to this instance's clients
	rawOrigins     bool // Origin and ALLOWED_ORIGINS compared byte for byte (no trimming, no lowercasing, trailing slash kept)
	fixedPongWait  bool // PONG_WAIT is ignored: a silent client is dropped after 2.5 × PING_INTERVAL
	deadPublisher  bool // one Redis connection, dialed at start-up, publishes every message and is never dialed again
}

var variants = map[string]variant{
	"local-only":            {description: "messages are broadcast to this instance's clients only (no Pub/Sub)", localOnly: true},
	"no-origin-check":       {description: "the Origin header is not checked", noOriginCheck: true},
	"blocking-hub":          {description: "the hub blocks on a client whose buffer is full (no drop, no write deadline)", blockingHub: true},
	"no-ping":               {description: "the server never pings and sets no read deadline", noPing: true},
	"no-resubscribe":        {description: "the Redis subscription is not made again once lost", noResubscribe: true},
	"double-delivery":       {description: "a message is broadcast locally and also through Redis, so local clients get it twice", doubleDelivery: true},
	"origin-not-normalised": {description: "the Origin is compared byte for byte with the entries of ALLOWED_ORIGINS", rawOrigins: true},
	"pong-wait-ignored":     {description: "PONG_WAIT is ignored: a silent client is dropped after 2.5 × PING_INTERVAL", fixedPongWait: true},
	"dead-publisher":        {description: "messages are published on one connection dialed at start-up, never dialed again once Redis restarts", deadPublisher: true},
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
