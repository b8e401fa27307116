package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

type worker struct {
	cfg    config
	bug    variant
	store  *store
	broker *broker
}

// consume processes deliveries from the orders queue with cfg.workers
// goroutines until the connection closes or ctx ends.
func (w *worker) consume(ctx context.Context, conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	// At most this many unacknowledged orders in flight: the rest wait in the queue,
	// where they survive this process dying.
	if err := ch.Qos(w.cfg.workers, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(queueName, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	if w.bug.autoAck {
		// The mistake: every delivery is acknowledged the moment it arrives and
		// handed to the workers through an in-memory buffer, exactly what
		// auto-ack does. The broker forgets it at once; the process may not live
		// to process it.
		early := make(chan amqp.Delivery, 100000)
		go func(from <-chan amqp.Delivery) {
			defer close(early)
			for d := range from {
				_ = d.Ack(false)
				early <- d
			}
		}(deliveries)
		deliveries = early
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range deliveries {
				w.handle(ctx, d)
			}
		}()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case e := <-closed:
		wg.Wait()
		if e == nil {
			return errors.New("connection closed")
		}
		return e
	}
}

// handle processes one delivery: apply it once, do the rest of the work, ack.
// A failure is retried by republishing the order with x-retries+1; after
// MAX_RETRIES retries it goes to the dead-letter queue with x-error.
func (w *worker) handle(ctx context.Context, d amqp.Delivery) {
	if w.bug.ackOnReceipt {
		// The mistake: the broker forgets the order now, before its effect is
		// recorded; if the process dies before that, the order is lost.
		_ = d.Ack(false)
	}
	o, err := parseOrder(d.Body)
	applied := false
	if err == nil {
		// Counting the attempt, applying and marking done are one atomic step;
		// an order already applied is skipped and not counted again.
		applied, err = w.store.apply(o, !w.bug.noIdempotency)
		if err != nil {
			err = fmt.Errorf("applying the order: %v", err)
		}
	} else if o.ID != "" {
		if aerr := w.store.attempt(o.ID); aerr != nil {
			log.Printf("order %q: recording the attempt: %v", o.ID, aerr)
		}
	}
	if err != nil {
		w.fail(ctx, d, o.ID, err.Error())
		return
	}
	// The rest of handling the order (e.g. telling shipping) happens after its
	// effect is recorded and before it is acknowledged: a crash here means the
	// order is delivered again, and must not be applied twice. An order that
	// was applied before is only acknowledged.
	if applied && o.WorkMs > 0 {
		time.Sleep(time.Duration(o.WorkMs) * time.Millisecond)
	}
	if !w.acksEarly() {
		if err := d.Ack(false); err != nil {
			log.Printf("ack of order %s failed (it will be delivered again): %v", o.ID, err)
		}
	}
}

// acksEarly tells whether a delivery was acknowledged before it was handled (the mistakes).
func (w *worker) acksEarly() bool { return w.bug.autoAck || w.bug.ackOnReceipt }

func (w *worker) fail(ctx context.Context, d amqp.Delivery, id, reason string) {
	if w.bug.infiniteRequeue {
		if id != "" {
			_ = w.store.failed(id, reason, false)
		}
		time.Sleep(20 * time.Millisecond)
		_ = d.Nack(false, true)
		return
	}
	retries := headerInt(d.Headers["x-retries"])
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	headers["x-error"] = reason
	exchange, key, final := exchangeName, routingKey, false
	if retries < w.cfg.maxRetries {
		retries++
	} else {
		exchange, key, final = "", dlqName, true
	}
	// A number (an AMQP long), as every producer and consumer of orders reads it.
	headers["x-retries"] = int32(retries)
	if w.bug.retriesAsString {
		headers["x-retries"] = strconv.Itoa(retries)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := w.broker.publish(pctx, exchange, key, d.Body, headers, true, true); err != nil {
		log.Printf("order %q: could not republish (%v); it will be delivered again", id, err)
		if !w.acksEarly() {
			_ = d.Nack(false, true)
		}
		return
	}
	if id != "" {
		_ = w.store.failed(id, reason, final)
	}
	if final {
		log.Printf("order %q dead-lettered after %d retries: %s", id, retries, reason)
	}
	if !w.acksEarly() {
		_ = d.Ack(false)
	}
}

func headerInt(v interface{}) int {
	switch n := v.(type) {
	case int:
		return n
	case int8:
		return int(n)
	case int16:
		return int(n)
	case int32:
		return int(n)
	case int64:
		return int(n)
	case uint8:
		return int(n)
	case uint16:
		return int(n)
	case uint32:
		return int(n)
	case float64:
		return int(n)
	case string:
		// Only the retries-as-string mistake writes it so; read back what it wrote.
		k, _ := strconv.Atoi(n)
		return k
	}
	return 0
}

type order struct {
	ID       string `json:"id"`
	Product  string `json:"product"`
	Quantity int64  `json:"quantity"`
	WorkMs   int    `json:"work_ms"`
}

// parseOrder decodes and validates an order; on a validation error the id is
// still returned when the body had one.
func parseOrder(body []byte) (order, error) {
	var raw struct {
		ID       string          `json:"id"`
		Product  string          `json:"product"`
		Quantity json.RawMessage `json:"quantity"`
		WorkMs   json.RawMessage `json:"work_ms"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return order{}, fmt.Errorf("the body is not a JSON order: %v", err)
	}
	o := order{ID: raw.ID, Product: raw.Product}
	if !validName(raw.ID) {
		return order{}, errors.New("id must be 1 to 64 characters of A-Z a-z 0-9 _ . : -")
	}
	if !validName(raw.Product) {
		return o, errors.New("product must be 1 to 64 characters of A-Z a-z 0-9 _ . : -")
	}
	if err := json.Unmarshal(raw.Quantity, &o.Quantity); err != nil || o.Quantity < 1 || o.Quantity > 1000000 {
		return o, fmt.Errorf("quantity must be a whole number from 1 to 1000000, got %s", orNone(raw.Quantity))
	}
	if len(raw.WorkMs) > 0 {
		if err := json.Unmarshal(raw.WorkMs, &o.WorkMs); err != nil || o.WorkMs < 0 || o.WorkMs > 10000 {
			return o, fmt.Errorf("work_ms must be a whole number from 0 to 10000, got %s", raw.WorkMs)
		}
	}
	return o, nil
}

func orNone(r json.RawMessage) string {
	if len(r) == 0 {
		return "none"
	}
	return string(r)
}

func validName(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}
