package main

import (
	"fmt"
	"sort"
	"strings"
)

// variant is the learner mistake, if any, this process reproduces. The zero
// value is the correct service.
type variant struct {
	name        string
	description string

	autoAck         bool // every delivery is acknowledged on arrival, before it is processed (what auto-ack does)
	infiniteRequeue bool // a failing order is nacked with requeue=true, forever
	noIdempotency   bool // every delivery is applied, even one that was applied before
	ackOnReceipt    bool // each handler acknowledges its delivery first, then applies it
	transient       bool // the API publishes orders as transient (non-persistent) messages
	noConfirm       bool // the API answers 202 as soon as the message is written, without the broker's confirm
	retriesAsString bool // the x-retries header is a string ("3"), not a number
	knownFirst      bool // the API records the id before publishing, and answers 202 without publishing for an id it has recorded
}

var variants = map[string]variant{
	"auto-ack": {
		description: "the worker acknowledges orders on arrival (auto-ack): orders in flight are lost when it dies",
		autoAck:     true,
	},
	"infinite-requeue": {
		description:     "a failing order is requeued forever and never reaches the dead-letter queue",
		infiniteRequeue: true,
	},
	"no-idempotency": {
		description:   "redelivered and resubmitted orders are applied again",
		noIdempotency: true,
	},
	"ack-on-receipt": {
		description:  "each delivery is acknowledged when the worker takes it, before its effect is recorded: orders in flight are lost when the worker dies",
		ackOnReceipt: true,
	},
	"transient": {
		description: "the API publishes orders as transient messages: orders still queued are lost when RabbitMQ restarts",
		transient:   true,
	},
	"no-confirm": {
		description: "the API answers 202 without waiting for the broker's confirm: an order RabbitMQ never got is reported accepted",
		noConfirm:   true,
	},
	"known-first": {
		description: "the API records the order's id before publishing it and skips ids it has recorded: a submission answered 503 leaves its id known, and the next one is answered 202 without being published",
		knownFirst:  true,
	},
	"retries-as-string": {
		description:     "the x-retries header is written as a string (\"3\"), not a number",
		retriesAsString: true,
	},
}

func selectVariant(name string) (variant, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return variant{}, nil
	}
	v, ok := variants[name]
	if !ok {
		var names []string
		for k := range variants {
			names = append(names, k)
		}
		sort.Strings(names)
		return variant{}, fmt.Errorf("ORDERS_BUG=%q: unknown; known: %s", name, strings.Join(names, ", "))
	}
	v.name = name
	return v, nil
}
