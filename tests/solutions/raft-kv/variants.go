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

	staleReads      bool // GET answered from the local map on any node, no leader check
	ackBeforeCommit bool // writes change the local map and answer 200 before raft commits them
	memoryStores    bool // raft log, stable store and snapshots kept in memory
	noForward       bool // a follower hands requests to raft itself and reports its error as 500
}

var variants = map[string]variant{
	"stale-reads": {
		description: "GET is answered from the node's local map on any node, without confirming leadership",
		staleReads:  true,
	},
	"ack-before-commit": {
		description:     "writes change the leader's local map and answer 200 before raft has committed them",
		ackBeforeCommit: true,
	},
	"lose-data-on-restart": {
		description:  "raft's log, stable store and snapshots are kept in memory; a restarted node bootstraps again, empty",
		memoryStores: true,
	},
	"no-forward": {
		description: "a follower neither forwards nor redirects: raft.ErrNotLeader comes back as 500",
		noForward:   true,
	},
}

func parseVariant(s string) (variant, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return variant{name: "none", description: "the correct service"}, nil
	}
	v, ok := variants[s]
	if !ok {
		names := make([]string, 0, len(variants))
		for n := range variants {
			names = append(names, n)
		}
		sort.Strings(names)
		return variant{}, fmt.Errorf("unknown RAFT_BUG %q (known: %s; unset for the correct service)", s, strings.Join(names, ", "))
	}
	v.name = s
	return v, nil
}
