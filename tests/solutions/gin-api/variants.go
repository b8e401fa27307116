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

	noTx       bool // the balance is checked, then the two updates run, with no transaction
	lostUpdate bool // a transaction without row locks that writes balances computed in Go
	noDeadline bool // queries without a deadline, connections without read deadlines
	concatSQL  bool // the owner pasted into the INSERT's text
	offsetPage bool // LIMIT/OFFSET pagination
}

var variants = map[string]variant{
	"no-tx":       {description: "transfer: balance checked, then two updates, with no transaction", noTx: true},
	"lost-update": {description: "transfer in a transaction, without row locks, writing balances computed in Go", lostUpdate: true},
	"no-deadline": {description: "queries without a deadline (context.Background), no read deadlines", noDeadline: true},
	"concat-sql":  {description: "the INSERT of an account is built by pasting the owner into the SQL", concatSQL: true},
	"offset-page": {description: "pagination by LIMIT/OFFSET", offsetPage: true},
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
