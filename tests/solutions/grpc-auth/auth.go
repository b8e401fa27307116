package main

import (
	"context"
	"database/sql"
	"errors"
	"log"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lib/pq"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type authServer struct {
	UnimplementedAuthServer
	cfg config
	db  *sql.DB
}

// validEmail accepts a plain address (no display name) with a dotted domain.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	return at > 0 && strings.Contains(s[at+1:], ".") && !strings.HasSuffix(s, ".")
}

// withDB runs one database operation bounded by the caller's deadline and by
// dbTimeout, so that a dead or hanging database is reported quickly. It
// returns when the context ends even if the driver does not: lib/pq cannot
// interrupt a query in flight (it asks the server to cancel it, which a hung
// server never does), so the operation finishes, or fails, on its own later
// (the dialer bounds every read, see openDB).
func (s *authServer) withDB(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.cfg.bug == "db-hang" {
		return fn(context.Background())
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.dbTimeout)
	done := make(chan error, 1)
	go func() {
		defer cancel()
		done <- fn(dctx)
	}()
	select {
	case err := <-done:
		return err
	case <-dctx.Done():
		return dctx.Err()
	}
}

// dbError maps a database failure to a status: the caller's own deadline
// passed → DEADLINE_EXCEEDED; otherwise the database is unreachable or too
// slow → UNAVAILABLE (the client may retry).
func (s *authServer) dbError(ctx context.Context, op string, err error) error {
	log.Printf("%s: %v", op, err)
	if ctx.Err() == context.DeadlineExceeded {
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	if ctx.Err() == context.Canceled {
		return status.Error(codes.Canceled, "canceled")
	}
	if s.cfg.bug == "db-internal" {
		return status.Errorf(codes.Internal, "%s: %v", op, err)
	}
	return status.Error(codes.Unavailable, "the user store is unavailable, try again")
}

func (s *authServer) Signup(ctx context.Context, req *SignupRequest) (*SignupResponse, error) {
	if s.cfg.bug != "accept-any-email" && !validEmail(req.Email) {
		return nil, status.Error(codes.InvalidArgument, "email is not a valid address")
	}
	if len(req.Password) < 8 || len(req.Password) > 72 {
		return nil, status.Error(codes.InvalidArgument, "password must be 8 to 72 bytes long")
	}
	stored := req.Password
	if s.cfg.bug != "plaintext-passwords" {
		h, err := bcrypt.GenerateFromPassword([]byte(req.Password), bcrypt.DefaultCost)
		if err != nil {
			return nil, status.Error(codes.Internal, "hashing the password failed")
		}
		stored = string(h)
	}
	var id int64
	err := s.withDB(ctx, func(dctx context.Context) error {
		return s.db.QueryRowContext(dctx, `INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id`, req.Email, stored).Scan(&id)
	})
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" {
		if s.cfg.bug == "wrong-codes" {
			return nil, status.Error(codes.Internal, "duplicate key value violates unique constraint")
		}
		return nil, status.Error(codes.AlreadyExists, "an account with this email exists")
	}
	if err != nil {
		return nil, s.dbError(ctx, "signup", err)
	}
	return &SignupResponse{UserId: strconv.FormatInt(id, 10)}, nil
}

func (s *authServer) Login(ctx context.Context, req *LoginRequest) (*LoginResponse, error) {
	var id int64
	var stored string
	err := s.withDB(ctx, func(dctx context.Context) error {
		return s.db.QueryRowContext(dctx, `SELECT id, password_hash FROM users WHERE email = $1`, req.Email).Scan(&id, &stored)
	})
	if errors.Is(err, sql.ErrNoRows) {
		if s.cfg.bug == "wrong-codes" {
			return nil, status.Error(codes.NotFound, "no such user")
		}
		return nil, status.Error(codes.Unauthenticated, "wrong email or password")
	}
	if err != nil {
		return nil, s.dbError(ctx, "login", err)
	}
	var ok bool
	if s.cfg.bug == "plaintext-passwords" {
		ok = stored == req.Password
	} else {
		ok = bcrypt.CompareHashAndPassword([]byte(stored), []byte(req.Password)) == nil
	}
	if !ok {
		if s.cfg.bug == "wrong-codes" {
			return nil, status.Error(codes.PermissionDenied, "wrong password")
		}
		return nil, status.Error(codes.Unauthenticated, "wrong email or password")
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": strconv.FormatInt(id, 10), "email": req.Email, "iat": now.Unix()}
	if s.cfg.bug != "no-expiry" {
		claims["exp"] = now.Add(s.cfg.ttl).Unix()
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.key())
	if err != nil {
		return nil, status.Error(codes.Internal, "signing the token failed")
	}
	return &LoginResponse{Token: signed, ExpiresIn: int64(s.cfg.ttl / time.Second)}, nil
}

// key is the HS256 key: the bytes of JWT_SECRET.
func (s *authServer) key() []byte {
	if s.cfg.bug == "hardcoded-secret" {
		return []byte("change-me-please-0123456789")
	}
	return s.cfg.secret
}

func (s *authServer) WhoAmI(ctx context.Context, req *WhoAmIRequest) (*WhoAmIResponse, error) {
	claims := jwt.MapClaims{}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"})}
	if s.cfg.bug != "no-expiry" {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	_, err := jwt.ParseWithClaims(req.Token, claims, func(t *jwt.Token) (interface{}, error) { return s.key(), nil }, opts...)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "invalid token")
	}
	sub, _ := claims["sub"].(string)
	email, _ := claims["email"].(string)
	return &WhoAmIResponse{UserId: sub, Email: email}, nil
}
