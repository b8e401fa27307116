package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// A sliding-window log per client: a sorted set of the admitted requests'
// times (Redis' own clock, so every instance agrees). One script run is one
// atomic decision: drop what left the window, count, admit or refuse, and
// keep the key no longer than the window.
//
// KEYS[1] the client's key; ARGV: window ms, limit, a unique member suffix,
// whether to set the key's expiry (the no-ttl variant does not).
// Returns {admitted 0/1, remaining, ms until the oldest admitted leaves}.
var slidingScript = redis.NewScript(1, `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], now, now .. '-' .. ARGV[3])
  if ARGV[4] == '1' then redis.call('PEXPIRE', KEYS[1], window) end
  return {1, limit - n - 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, 0, tonumber(oldest[2]) + window - now}
`)

// A fixed window aligned on multiples of the window (the fixed-window mistake).
var fixedScript = redis.NewScript(1, `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
`)

type redisLimiter struct {
	pool   *redis.Pool
	limit  int
	window time.Duration
	v      variant

	// The single-conn mistake: one connection dialled at start, used by every
	// request in turn, never replaced once it failed.
	mu   sync.Mutex
	conn redis.Conn
}

func newRedisLimiter(addr string, limit int, window time.Duration, v variant) *redisLimiter {
	opts := []redis.DialOption{
		redis.DialConnectTimeout(250 * time.Millisecond),
		redis.DialReadTimeout(250 * time.Millisecond),
		redis.DialWriteTimeout(250 * time.Millisecond),
	}
	if v.noRedisTimeout {
		opts = nil
	}
	pool := &redis.Pool{
		MaxIdle:     64,
		IdleTimeout: time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr, opts...)
		},
		TestOnBorrow: func(c redis.Conn, t time.Time) error {
			if time.Since(t) < time.Second {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}
	l := &redisLimiter{pool: pool, limit: limit, window: window, v: v}
	if v.singleConn {
		c, err := redis.Dial("tcp", addr, opts...)
		if err != nil {
			log.Fatalf("dialling Redis: %v", err)
		}
		l.conn = c
	}
	return l
}

func member() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (l *redisLimiter) allow(ctx context.Context, client string) (decision, error) {
	var c redis.Conn
	if l.v.singleConn {
		l.mu.Lock()
		defer l.mu.Unlock()
		c = l.conn
	} else {
		pc, err := l.pool.GetContext(ctx)
		if err != nil {
			return decision{}, err
		}
		defer pc.Close()
		c = pc
	}
	key := "rl:" + client
	ms := l.window.Milliseconds()
	switch {
	case l.v.fixedWindow:
		bucket := time.Now().UnixMilli() / ms
		vals, err := redis.Int64s(fixedScript.Do(c, fmt.Sprintf("%s:%d", key, bucket), ms))
		if err != nil {
			return decision{}, err
		}
		if vals[0] <= int64(l.limit) {
			return decision{admitted: true, remaining: l.limit - int(vals[0])}, nil
		}
		return decision{retryAfter: time.Duration(vals[1]) * time.Millisecond}, nil
	case l.v.nonAtomic:
		// Check, then set: two round trips, and other requests in between.
		now := time.Now().UnixMilli()
		if _, err := c.Do("ZREMRANGEBYSCORE", key, "-inf", now-ms); err != nil {
			return decision{}, err
		}
		n, err := redis.Int(c.Do("ZCARD", key))
		if err != nil {
			return decision{}, err
		}
		if n >= l.limit {
			oldest, err := redis.Int64Map(c.Do("ZRANGE", key, 0, 0, "WITHSCORES"))
			if err != nil {
				return decision{}, err
			}
			var at int64
			for _, v := range oldest {
				at = v
			}
			return decision{retryAfter: time.Duration(at+ms-now) * time.Millisecond}, nil
		}
		if _, err := c.Do("ZADD", key, now, fmt.Sprintf("%d-%s", now, member())); err != nil {
			return decision{}, err
		}
		if _, err := c.Do("PEXPIRE", key, ms); err != nil {
			return decision{}, err
		}
		return decision{admitted: true, remaining: l.limit - n - 1}, nil
	}
	expire := "1"
	if l.v.noTTL {
		expire = "0"
	}
	vals, err := redis.Int64s(slidingScript.Do(c, key, ms, l.limit, member(), expire))
	if err != nil {
		return decision{}, err
	}
	if len(vals) != 3 {
		return decision{}, fmt.Errorf("the limiter's script returned %d values", len(vals))
	}
	return decision{admitted: vals[0] == 1, remaining: int(vals[1]), retryAfter: time.Duration(vals[2]) * time.Millisecond}, nil
}

// memoryLimiter is the per-instance mistake: a correct sliding window, kept
// in this process alone, so N instances admit N times the limit.
type memoryLimiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	log    map[string][]time.Time
}

func newMemoryLimiter(limit int, window time.Duration) *memoryLimiter {
	return &memoryLimiter{limit: limit, window: window, log: map[string][]time.Time{}}
}

func (l *memoryLimiter) allow(_ context.Context, client string) (decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	kept := l.log[client][:0]
	for _, t := range l.log[client] {
		if now.Sub(t) < l.window {
			kept = append(kept, t)
		}
	}
	if len(kept) >= l.limit {
		l.log[client] = kept
		return decision{retryAfter: kept[0].Add(l.window).Sub(now)}, nil
	}
	l.log[client] = append(kept, now)
	return decision{admitted: true, remaining: l.limit - len(kept) - 1}, nil
}
