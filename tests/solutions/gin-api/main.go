// Command ginapi is the reference solution of the gin-api lab: an accounts
// API on Gin and PostgreSQL (lib/pq), with its migrations run at start-up,
// field-level validation errors, keyset pagination, transfers in one
// transaction with the rows locked, and a deadline on every query.
//
// The same binary holds the mistakes learners typically make, selected at run
// time with GINAPI_BUG (see README.md). Unset or empty means correct.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/lib/pq"
)

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// boundedDialer: every read from PostgreSQL has a deadline, so a connection
// to a database that stopped answering fails and leaves the pool.
type boundedDialer struct{}

func (boundedDialer) Dial(network, addr string) (net.Conn, error) {
	return boundedDialer{}.DialContext(context.Background(), network, addr)
}

func (boundedDialer) DialTimeout(network, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return boundedDialer{}.DialContext(ctx, network, addr)
}

func (boundedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, KeepAlive: 15 * time.Second}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return boundedConn{c}, nil
}

type boundedConn struct{ net.Conn }

func (c boundedConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func openDB(url string, v variant) (*sql.DB, error) {
	var db *sql.DB
	if v.noDeadline {
		var err error
		if db, err = sql.Open("postgres", url); err != nil {
			return nil, err
		}
	} else {
		connector, err := pq.NewConnector(url)
		if err != nil {
			return nil, err
		}
		connector.Dialer(boundedDialer{})
		db = sql.OpenDB(connector)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(20)
	db.SetConnMaxIdleTime(30 * time.Second)
	// Migrations: the schema is made at start-up, and waited for.
	until := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := db.ExecContext(ctx, schema)
		cancel()
		if err == nil {
			return db, nil
		}
		if time.Now().After(until) {
			return nil, fmt.Errorf("migrating: %w", err)
		}
		log.Printf("database not ready yet: %v", err)
		time.Sleep(500 * time.Millisecond)
	}
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	v, err := parseVariant(os.Getenv("GINAPI_BUG"))
	if err != nil {
		log.Fatalf("GINAPI_BUG: %v", err)
	}
	ms, err := strconv.Atoi(envOr("QUERY_TIMEOUT_MS", "500"))
	if err != nil || ms < 1 {
		log.Fatal("QUERY_TIMEOUT_MS must be a positive integer")
	}
	url := envOr("DATABASE_URL", "postgres://lab:lab@127.0.0.1:5432/lab?sslmode=disable")
	if !strings.Contains(url, "connect_timeout") {
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		url += sep + "connect_timeout=1"
	}
	db, err := openDB(url, v)
	if err != nil {
		log.Fatal(err)
	}
	if v.name != "" {
		log.Printf("variant %q: %s", v.name, v.description)
	}
	gin.SetMode(gin.ReleaseMode)
	api := &api{db: db, q: New(db), timeout: time.Duration(ms) * time.Millisecond, v: v}
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.POST("/accounts", api.createAccount)
	r.GET("/accounts", api.listAccounts)
	r.GET("/accounts/:id", api.getAccount)
	r.POST("/accounts/:id/deposit", api.deposit)
	r.POST("/transfers", api.transfer)

	srv := &http.Server{Addr: ":" + envOr("PORT", "8080"), Handler: r, ReadHeaderTimeout: 5 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf("listening on %s", srv.Addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
