package main

import (
	"context"
	"errors"
	"log"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

const (
	connectTimeout = 300 * time.Millisecond
	ioTimeout      = 300 * time.Millisecond
	// An idle connection is PINGed before reuse when it has been idle this long.
	testIdleAfter = time.Second
	pingTimeout   = 150 * time.Millisecond
)

// errUnavailable wraps every failure to talk to Redis; handlers map it to 503.
var errUnavailable = errors.New("redis unavailable")

type unavailableError struct{ cause error }

func (e unavailableError) Error() string { return "redis unavailable: " + e.cause.Error() }
func (e unavailableError) Unwrap() error { return errUnavailable }

// redisDB is a connection pool with a bounded cost per request when Redis is down.
//
// Every network operation has a deadline (connect, read, write). On top of that,
// when a connection fails, every connection that was idle in the pool at that
// moment is considered stale and is discarded without network I/O the next time
// it is borrowed. Without this, one request could borrow several dead idle
// connections in a row (each costing a timeout) before dialling a new one.
type redisDB struct {
	pool *redis.Pool

	// Unix nanoseconds of the last connection failure.
	brokenAt atomic.Int64

	// retryForever is the redis-hang mistake: keep retrying until Redis answers.
	retryForever bool
}

func newRedisDB(addr string, v variant) *redisDB {
	db := &redisDB{}
	if v.redisHang {
		// The learner's version: no timeouts anywhere, and a loop that waits for
		// Redis to come back instead of failing the request.
		db.retryForever = true
		db.pool = &redis.Pool{
			MaxIdle:     10,
			IdleTimeout: 4 * time.Minute,
			Dial: func() (redis.Conn, error) {
				return redis.Dial("tcp", addr)
			},
		}
		return db
	}
	db.pool = &redis.Pool{
		MaxIdle:     16,
		MaxActive:   128,
		IdleTimeout: 2 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr,
				redis.DialConnectTimeout(connectTimeout),
				redis.DialReadTimeout(ioTimeout),
				redis.DialWriteTimeout(ioTimeout),
			)
		},
		TestOnBorrow: db.testOnBorrow,
	}
	return db
}

func (db *redisDB) markBroken() {
	db.brokenAt.Store(time.Now().UnixNano())
}

func (db *redisDB) testOnBorrow(c redis.Conn, idleSince time.Time) error {
	if idleSince.UnixNano() <= db.brokenAt.Load() {
		return errors.New("idle since before the last connection failure")
	}
	if time.Since(idleSince) < testIdleAfter {
		return nil
	}
	if _, err := redis.DoWithTimeout(c, pingTimeout, "PING"); err != nil {
		db.markBroken()
		return err
	}
	return nil
}

// with runs f on one pooled connection. A broken connection or a failed dial is
// returned as an error wrapping errUnavailable; a Redis error reply is returned
// as is.
func (db *redisDB) with(ctx context.Context, f func(c redis.Conn) error) error {
	for attempt := 1; ; attempt++ {
		err := db.once(ctx, f)
		if err == nil || !errors.Is(err, errUnavailable) || !db.retryForever {
			return err
		}
		if attempt == 1 || attempt%50 == 0 {
			log.Printf("redis not answering, retrying (attempt %d): %v", attempt, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (db *redisDB) once(ctx context.Context, f func(c redis.Conn) error) error {
	c, err := db.pool.GetContext(ctx)
	if err != nil {
		if !errors.Is(err, redis.ErrPoolExhausted) && ctx.Err() == nil {
			db.markBroken() // the dial failed
		}
		return unavailableError{err}
	}
	defer c.Close()
	err = f(c)
	if c.Err() != nil {
		// The connection itself failed (timeout, EOF, reset): not a Redis reply.
		db.markBroken()
		return unavailableError{c.Err()}
	}
	return err
}

func (db *redisDB) ping(ctx context.Context) error {
	return db.with(ctx, func(c redis.Conn) error {
		_, err := c.Do("PING")
		return err
	})
}

func (db *redisDB) close() {
	db.pool.Close()
}
