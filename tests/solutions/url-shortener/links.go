package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/gomodule/redigo/redis"
)

const (
	codeLength   = 7
	codeAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	maxAttempts  = 10
)

var errNoFreeCode = errors.New("could not find a free code")

// linkStore maps short codes to URLs.
type linkStore interface {
	// create stores url under a new random code and returns the code.
	create(ctx context.Context, url string) (string, error)
	// lookup returns the URL of code; found is false for an unknown code.
	lookup(ctx context.Context, code string) (url string, found bool, err error)
}

// newCode returns codeLength characters drawn uniformly from codeAlphabet.
func newCode() (string, error) {
	// 62 symbols: reject bytes >= 248 (4*62) so that every symbol is equally likely.
	const limit = 256 - 256%len(codeAlphabet)
	out := make([]byte, 0, codeLength)
	buf := make([]byte, 2*codeLength)
	for len(out) < codeLength {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < codeLength {
				out = append(out, codeAlphabet[int(b)%len(codeAlphabet)])
			}
		}
	}
	return string(out), nil
}

func linkKey(code string) string { return "link:" + code }

// redisLinks keeps links in Redis under link:<code>, without expiry.
type redisLinks struct{ db *redisDB }

func (s redisLinks) create(ctx context.Context, url string) (string, error) {
	var code string
	err := s.db.with(ctx, func(c redis.Conn) error {
		for i := 0; i < maxAttempts; i++ {
			candidate, err := newCode()
			if err != nil {
				return err
			}
			// SET NX: never overwrite the link of an existing code.
			created, err := redis.Int(c.Do("SETNX", linkKey(candidate), url))
			if err != nil {
				return err
			}
			if created == 1 {
				code = candidate
				return nil
			}
		}
		return errNoFreeCode
	})
	return code, err
}

func (s redisLinks) lookup(ctx context.Context, code string) (string, bool, error) {
	var url string
	found := false
	err := s.db.with(ctx, func(c redis.Conn) error {
		u, err := redis.String(c.Do("GET", linkKey(code)))
		if errors.Is(err, redis.ErrNil) {
			return nil
		}
		if err != nil {
			return err
		}
		url, found = u, true
		return nil
	})
	return url, found, err
}

// memLinks is the "memory" mistake: a map in the process, gone on restart.
type memLinks struct {
	mu    sync.RWMutex
	links map[string]string
}

func newMemLinks() *memLinks { return &memLinks{links: make(map[string]string)} }

func (s *memLinks) create(_ context.Context, url string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < maxAttempts; i++ {
		code, err := newCode()
		if err != nil {
			return "", err
		}
		if _, taken := s.links[code]; !taken {
			s.links[code] = url
			return code, nil
		}
	}
	return "", fmt.Errorf("%w after %d attempts", errNoFreeCode, maxAttempts)
}

func (s *memLinks) lookup(_ context.Context, code string) (string, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	url, ok := s.links[code]
	return url, ok, nil
}
