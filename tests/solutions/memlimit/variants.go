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

	noMemLimit bool // reads the cgroup's limit, never sets the Go memory limit
	hostMemory bool // takes the machine's memory (/proc/meminfo) for the container's
}

var variants = map[string]variant{
	"no-memlimit": {description: "the Go memory limit is never set (no GOMEMLIMIT, no debug.SetMemoryLimit)", noMemLimit: true},
	"host-memory": {description: "the limit is taken from /proc/meminfo, which shows the machine's memory, not the container's", hostMemory: true},
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
