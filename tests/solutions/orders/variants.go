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
