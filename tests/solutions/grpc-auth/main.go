// Command grpcauth is the reference solution of the grpc-auth lab: a gRPC
// service (auth.v1.Auth, see auth.proto) that signs users up, keeps them in
// PostgreSQL with bcrypt password hashes, and logs them in with HS256 JWTs.
//
// The same binary also contains the mistakes learners typically make, selected
// at run time with AUTH_BUG (see README.md). Unset or empty means correct.
//
// auth.pb.go and auth_grpc.pb.go were generated from labs/grpc-auth/auth.proto
// with Debian's protoc, protoc-gen-go and protoc-gen-go-grpc (package main).
package main

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lib/pq"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

type config struct {
	port      string
	dbURL     string
	secret    []byte
	ttl       time.Duration
	dbTimeout time.Duration
	bug       string
}

func loadConfig() (config, error) {
	// dbTimeout: short enough to answer UNAVAILABLE within a second when the
	// database is gone, long enough for a first connection on a busy machine
	// (500 ms timed out a signup in a loaded test run).
	c := config{
		port:      envOr("PORT", "50051"),
		dbURL:     os.Getenv("DATABASE_URL"),
		secret:    []byte(os.Getenv("JWT_SECRET")),
		dbTimeout: 800 * time.Millisecond,
		bug:       os.Getenv("AUTH_BUG"),
	}
	if c.dbURL == "" {
		return c, fmt.Errorf("DATABASE_URL is not set")
	}
	if len(c.secret) < 16 {
		return c, fmt.Errorf("JWT_SECRET must be at least 16 bytes")
	}
	ttl, err := strconv.Atoi(envOr("TOKEN_TTL_SECONDS", "900"))
	if err != nil || ttl <= 0 {
		return c, fmt.Errorf("TOKEN_TTL_SECONDS must be a positive number of seconds")
	}
	c.ttl = time.Duration(ttl) * time.Second
	return c, nil
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

const schema = `CREATE TABLE IF NOT EXISTS users (
	id            BIGSERIAL PRIMARY KEY,
	email         TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// openDB connects with short timeouts, so that a dead database is noticed in
// well under a second, and creates the table (retrying while PostgreSQL starts).
func openDB(url string) (*sql.DB, error) {
	if !strings.Contains(url, "connect_timeout") {
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		url += sep + "connect_timeout=2"
	}
	connector, err := pq.NewConnector(url)
	if err != nil {
		return nil, err
	}
	connector.Dialer(boundedDialer{})
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(10)
	db.SetConnMaxIdleTime(30 * time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = db.ExecContext(ctx, schema)
		cancel()
		if err == nil {
			return db, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("creating the users table: %w", err)
		}
		log.Printf("database not ready yet: %v", err)
		time.Sleep(500 * time.Millisecond)
	}
}

// boundedDialer gives every read from PostgreSQL a deadline, so that a
// connection to a database that stopped answering fails (and leaves the pool)
// instead of holding a goroutine for ever.
type boundedDialer struct{}

const readLimit = 5 * time.Second

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
	if err := c.Conn.SetReadDeadline(time.Now().Add(readLimit)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func main() {
	cfg, err := loadConfig()
	if err != nil {
		log.Fatalf("config: %v", err)
	}
	db, err := openDB(cfg.dbURL)
	if err != nil {
		log.Fatalf("database: %v", err)
	}
	lis, err := net.Listen("tcp", ":"+cfg.port)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 10))
	RegisterAuthServer(srv, &authServer{cfg: cfg, db: db})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)

	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		hs.Shutdown()
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(3 * time.Second):
			srv.Stop()
		}
	}()
	log.Printf("auth service on :%s (token TTL %s)", cfg.port, cfg.ttl)
	if cfg.bug != "" {
		log.Printf("AUTH_BUG=%s", cfg.bug)
	}
	if err := srv.Serve(lis); err != nil {
		log.Fatalf("serve: %v", err)
	}
}
