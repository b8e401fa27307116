package main

import (
	"errors"
	"sync"
	"time"
)

type state int

const (
	closed state = iota
	open
	halfOpen
)

func (s state) String() string {
	switch s {
	case open:
		return "open"
	case halfOpen:
		return "half-open"
	}
	return "closed"
}

var errOpen = errors.New("circuit open")

// breaker is a consecutive-failures circuit breaker: Closed until `failures`
// calls in a row fail, then Open for `openFor`, then Half-Open, where one
// trial call goes through while the others are refused; the trial's success
// closes it, its failure opens it again for a whole `openFor`.
type breaker struct {
	mu        sync.Mutex
	state     state
	failures  int
	openedAt  time.Time
	trialBusy bool

	maxFailures int
	openFor     time.Duration
	v           variant
}

// current moves Open to Half-Open once the open period is over. Call with mu held.
func (b *breaker) current(now time.Time) state {
	if b.state == open && now.Sub(b.openedAt) >= b.openFor && !b.v.neverHalfOpen {
		b.state = halfOpen
		b.trialBusy = false
	}
	return b.state
}

// enter asks to make a call. It returns whether the call is the half-open trial.
func (b *breaker) enter() (trial bool, err error) {
	if b.v.noBreaker {
		return false, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.current(time.Now()) {
	case open:
		return false, errOpen
	case halfOpen:
		if b.v.halfOpenAll {
			return true, nil
		}
		if b.trialBusy {
			return false, errOpen
		}
		b.trialBusy = true
		return true, nil
	}
	return false, nil
}

// done records how a call that enter let through ended.
func (b *breaker) done(trial, ok bool) {
	if b.v.noBreaker {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if trial {
		b.trialBusy = false
		if b.state != halfOpen {
			return
		}
		if ok {
			b.state, b.failures = closed, 0
		} else {
			b.state, b.openedAt = open, time.Now()
		}
		return
	}
	if b.state != closed {
		return
	}
	if ok {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= b.maxFailures {
		b.state, b.openedAt = open, time.Now()
	}
}

func (b *breaker) snapshot() (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.current(time.Now()).String(), b.failures
}
