package main

import (
	"log"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

const channelPrefix = "chat:"

// bus is Redis Pub/Sub: PUBLISH chat:<room>, and one PSUBSCRIBE chat:* per instance.
type bus struct {
	addr string
	pool *redis.Pool

	// The dead-publisher variant: one connection for every PUBLISH, never dialed again.
	one    redis.Conn
	oneErr error
	oneMu  sync.Mutex
}

func dial(addr string) (redis.Conn, error) {
	return redis.Dial("tcp", addr,
		redis.DialConnectTimeout(500*time.Millisecond),
		redis.DialReadTimeout(time.Second),
		redis.DialWriteTimeout(time.Second))
}

func newBus(addr string, bug variant) *bus {
	b := &bus{addr: addr, pool: &redis.Pool{
		MaxIdle:     8,
		IdleTimeout: time.Minute,
		Dial:        func() (redis.Conn, error) { return dial(addr) },
		TestOnBorrow: func(c redis.Conn, t time.Time) error {
			if time.Since(t) < time.Second {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}}
	if bug.deadPublisher {
		// The mistake: one connection for the life of the process.
		b.one, b.oneErr = dial(addr)
	}
	return b
}

func (b *bus) publish(room string, data []byte) error {
	if b.one != nil || b.oneErr != nil {
		b.oneMu.Lock()
		defer b.oneMu.Unlock()
		if b.oneErr != nil {
			return b.oneErr
		}
		_, err := b.one.Do("PUBLISH", channelPrefix+room, data)
		return err
	}
	c := b.pool.Get()
	defer c.Close()
	_, err := c.Do("PUBLISH", channelPrefix+room, data)
	return err
}

// subscribe delivers every message of every room to this instance's hub, and
// subscribes again whenever the connection to Redis is lost.
func (b *bus) subscribe(h *hub, bug variant) {
	for {
		err := b.subscribeOnce(h)
		log.Printf("subscription lost: %v", err)
		if bug.noResubscribe {
			log.Printf("not subscribing again")
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *bus) subscribeOnce(h *hub) error {
	c, err := redis.Dial("tcp", b.addr, redis.DialConnectTimeout(500*time.Millisecond), redis.DialWriteTimeout(time.Second))
	if err != nil {
		return err
	}
	psc := redis.PubSubConn{Conn: c}
	defer psc.Close()
	if err := psc.PSubscribe(channelPrefix + "*"); err != nil {
		return err
	}
	// A PING every second, so that a dead connection shows within three seconds.
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if psc.Ping("") != nil {
					return
				}
			}
		}
	}()
	for {
		switch v := psc.ReceiveWithTimeout(3 * time.Second).(type) {
		case redis.Message:
			h.broadcast <- delivery{room: strings.TrimPrefix(v.Channel, channelPrefix), data: v.Data}
		case redis.Subscription:
			log.Printf("%s %s", v.Kind, v.Channel)
		case error:
			return v
		}
	}
}
