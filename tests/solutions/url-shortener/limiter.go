package main

import (
	"context"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// fixedWindow counts creations in Redis, one counter per key. A window opens at
// the first creation of a client and lasts the configured duration; the counter
// expires with it. Keeping it in Redis makes the limit survive restarts and hold
// across several instances of the service.
type fixedWindow struct {
	db     *redisDB
	limit  int
	window time.Duration
}

// Returns {count in the window, milliseconds until the window ends}.
var windowScript = redis.NewScript(1, `
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// allow records one attempt for key. When the key is over its limit it returns
// false and how long until the window ends.
func (l fixedWindow) allow(ctx context.Context, key string) (bool, time.Duration, error) {
	var count, ttlMillis int64
	err := l.db.with(ctx, func(c redis.Conn) error {
		vals, err := redis.Int64s(windowScript.Do(c, key, l.window.Milliseconds()))
		if err != nil {
			return err
		}
		if len(vals) != 2 {
			return fmt.Errorf("rate-limit script returned %d values", len(vals))
		}
		count, ttlMillis = vals[0], vals[1]
		return nil
	})
	if err != nil {
		return false, 0, err
	}
	if count <= int64(l.limit) {
		return true, 0, nil
	}
	return false, time.Duration(ttlMillis) * time.Millisecond, nil
}

// retryAfterSeconds rounds up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
