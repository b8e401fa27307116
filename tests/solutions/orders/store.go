package main

import (
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
)

// store keeps orders' states and per-product totals in Redis:
//
//	order:<id>    hash: status (queued|retrying|done|failed), attempts, product, quantity, error
//	stats:<prod>  hash: orders, quantity
type store struct{ pool *redis.Pool }

func newStore(addr string) *store {
	return &store{pool: &redis.Pool{
		MaxIdle:     32,
		IdleTimeout: time.Minute,
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", addr,
				redis.DialConnectTimeout(2*time.Second),
				redis.DialReadTimeout(5*time.Second),
				redis.DialWriteTimeout(5*time.Second))
		},
		TestOnBorrow: func(c redis.Conn, t time.Time) error {
			if time.Since(t) < 5*time.Second {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}}
}

// applyOnce counts the attempt, applies the order to its product's totals and
// marks it done, in one atomic step, unless it is already done: a redelivered
// or resubmitted order changes nothing the second time, not even its attempts
// (an attempt is an attempt to process an order not applied yet). It reports
// whether it applied the order.
var applyOnce = redis.NewScript(2, `
if redis.call('HGET', KEYS[1], 'status') == 'done' then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'done', 'product', ARGV[1], 'quantity', ARGV[2])
redis.call('HDEL', KEYS[1], 'error')
redis.call('HINCRBY', KEYS[2], 'orders', 1)
redis.call('HINCRBY', KEYS[2], 'quantity', ARGV[2])
return 1
`)

// applyAlways is the same without the check: the no-idempotency mistake.
var applyAlways = redis.NewScript(2, `
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'done', 'product', ARGV[1], 'quantity', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'orders', 1)
redis.call('HINCRBY', KEYS[2], 'quantity', ARGV[2])
return 1
`)

func (s *store) apply(o order, idempotent bool) (bool, error) {
	c := s.pool.Get()
	defer c.Close()
	script := applyOnce
	if !idempotent {
		script = applyAlways
	}
	n, err := redis.Int(script.Do(c, "order:"+o.ID, "stats:"+o.Product, o.Product, o.Quantity))
	return n == 1, err
}

// queued records a submitted order unless it is already known.
func (s *store) queued(o order) error {
	c := s.pool.Get()
	defer c.Close()
	_, err := c.Do("HSETNX", "order:"+o.ID, "status", "queued")
	return err
}

// claim records a submitted order as queued; false when its id is already
// recorded (the known-first variant's early duplicate check).
func (s *store) claim(id string) (bool, error) {
	c := s.pool.Get()
	defer c.Close()
	return redis.Bool(c.Do("HSETNX", "order:"+id, "status", "queued"))
}

// attempt counts one failed processing attempt of an order (one that could
// not be applied), unless the order is already done.
func (s *store) attempt(id string) error {
	c := s.pool.Get()
	defer c.Close()
	_, err := c.Do("EVAL", `if redis.call('HGET', KEYS[1], 'status') ~= 'done' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end return 0`, 1, "order:"+id)
	return err
}

// failed records a failed attempt; final means the order went to the DLQ.
func (s *store) failed(id, reason string, final bool) error {
	c := s.pool.Get()
	defer c.Close()
	status := "retrying"
	if final {
		status = "failed"
	}
	// A done order stays done (a late duplicate cannot undo it).
	_, err := c.Do("EVAL", `if redis.call('HGET', KEYS[1], 'status') ~= 'done' then redis.call('HSET', KEYS[1], 'status', ARGV[1], 'error', ARGV[2]) end return 0`, 1, "order:"+id, status, reason)
	return err
}

type orderState struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
}

func (s *store) get(id string) (*orderState, error) {
	c := s.pool.Get()
	defer c.Close()
	m, err := redis.StringMap(c.Do("HGETALL", "order:"+id))
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	n, _ := strconv.Atoi(m["attempts"])
	return &orderState{ID: id, Status: m["status"], Attempts: n, Error: m["error"]}, nil
}

type productStats struct {
	Product  string `json:"product"`
	Orders   int64  `json:"orders"`
	Quantity int64  `json:"quantity"`
}

func (s *store) stats(product string) (productStats, error) {
	c := s.pool.Get()
	defer c.Close()
	m, err := redis.Int64Map(c.Do("HGETALL", "stats:"+product))
	if err != nil {
		return productStats{}, err
	}
	return productStats{Product: product, Orders: m["orders"], Quantity: m["quantity"]}, nil
}
