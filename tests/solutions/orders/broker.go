package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The names every producer and consumer of orders agree on (see the lab's README).
const (
	exchangeName = "orders"
	queueName    = "orders"
	routingKey   = "orders"
	dlqName      = "orders.dlq"
)

var errUnavailable = errors.New("RabbitMQ is not reachable")

// broker keeps one connection to RabbitMQ alive, redialling when it drops,
// and offers confirmed publishes over a channel in confirm mode.
type broker struct {
	url string

	mu        sync.Mutex
	pub       *amqp.Channel // nil while disconnected
	consuming bool
}

func newBroker(url string) *broker { return &broker{url: url} }

// declare creates the topology; every declaration is idempotent.
func declare(ch *amqp.Channel) error {
	if err := ch.ExchangeDeclare(exchangeName, "direct", true, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring exchange %s: %w", exchangeName, err)
	}
	if _, err := ch.QueueDeclare(queueName, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring queue %s: %w", queueName, err)
	}
	if err := ch.QueueBind(queueName, routingKey, exchangeName, false, nil); err != nil {
		return fmt.Errorf("binding queue %s: %w", queueName, err)
	}
	if _, err := ch.QueueDeclare(dlqName, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring queue %s: %w", dlqName, err)
	}
	return nil
}

// run keeps two connections: one to publish on and one to consume on
// (RabbitMQ's advice: a consumer that falls behind must not hold up
// publisher confirms on the same connection). Each redials, with backoff,
// whenever it drops, until ctx ends.
func (b *broker) run(ctx context.Context, consume func(context.Context, *amqp.Connection) error) {
	go b.loop(ctx, "publisher", b.publisher)
	b.loop(ctx, "consumer", func(ctx context.Context, conn *amqp.Connection) error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		if err := declare(ch); err != nil {
			return err
		}
		_ = ch.Close()
		b.mu.Lock()
		b.consuming = true
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			b.consuming = false
			b.mu.Unlock()
		}()
		return consume(ctx, conn)
	})
}

func (b *broker) loop(ctx context.Context, role string, session func(context.Context, *amqp.Connection) error) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := b.session(ctx, role, session)
		if ctx.Err() != nil {
			return
		}
		log.Printf("AMQP %s connection ended: %v; reconnecting in %v", role, err, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > time.Second {
			backoff = time.Second
		}
	}
}

func (b *broker) session(ctx context.Context, role string, session func(context.Context, *amqp.Connection) error) error {
	conn, err := amqp.DialConfig(b.url, amqp.Config{Heartbeat: 5 * time.Second, Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		return err
	}
	defer conn.Close()
	log.Printf("AMQP %s connected", role)
	return session(ctx, conn)
}

// publisher holds a channel in confirm mode until the connection closes.
func (b *broker) publisher(ctx context.Context, conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := declare(ch); err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	b.mu.Lock()
	b.pub = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.pub = nil
		b.mu.Unlock()
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case e := <-closed:
		if e == nil {
			return errors.New("connection closed")
		}
		return e
	}
}

// connected tells whether the topology is declared and publishing is possible.
func (b *broker) connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pub != nil && b.consuming
}

// publish sends one message (persistent unless told otherwise) and waits for
// the broker's confirm (unless told not to: a mistake).
func (b *broker) publish(ctx context.Context, exchange, key string, body []byte, headers amqp.Table, persistent, confirm bool) error {
	b.mu.Lock()
	ch := b.pub
	if ch == nil {
		b.mu.Unlock()
		return errUnavailable
	}
	mode := amqp.Persistent
	if !persistent {
		mode = amqp.Transient
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: mode,
		Headers:      headers,
		Body:         body,
	})
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %v", errUnavailable, err)
	}
	if !confirm {
		return nil
	}
	done := make(chan bool, 1)
	go func() { done <- dc.Wait() }()
	select {
	case ok := <-done:
		if !ok {
			return fmt.Errorf("%w: the broker did not confirm the message", errUnavailable)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: no confirm: %v", errUnavailable, ctx.Err())
	}
}
