package main

// Queries in the shape sqlc generates them (a Queries struct over a DBTX,
// one method per named query), written by hand: the lab needs no sqlc
// binary, and the SQL lives next to the Go that runs it.

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// DBTX is what both *sql.DB and *sql.Tx offer.
type DBTX interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

type Queries struct{ db DBTX }

func New(db DBTX) *Queries { return &Queries{db: db} }

func (q *Queries) WithTx(tx *sql.Tx) *Queries { return &Queries{db: tx} }

type Account struct {
	ID        int64     `json:"id"`
	Owner     string    `json:"owner"`
	Balance   int64     `json:"balance"`
	Currency  string    `json:"currency"`
	CreatedAt time.Time `json:"created_at"`
}

const schema = `
CREATE TABLE IF NOT EXISTS accounts (
  id         BIGSERIAL PRIMARY KEY,
  owner      TEXT NOT NULL,
  balance    BIGINT NOT NULL DEFAULT 0,
  currency   TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS transfers (
  id         BIGSERIAL PRIMARY KEY,
  from_id    BIGINT NOT NULL REFERENCES accounts(id),
  to_id      BIGINT NOT NULL REFERENCES accounts(id),
  amount     BIGINT NOT NULL CHECK (amount > 0),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);`

const accountColumns = "id, owner, balance, currency, created_at"

func scanAccount(row interface{ Scan(...any) error }) (Account, error) {
	var a Account
	err := row.Scan(&a.ID, &a.Owner, &a.Balance, &a.Currency, &a.CreatedAt)
	return a, err
}

// name: CreateAccount :one
func (q *Queries) CreateAccount(ctx context.Context, owner, currency string) (Account, error) {
	return scanAccount(q.db.QueryRowContext(ctx, "INSERT INTO accounts (owner, currency) VALUES ($1, $2) RETURNING "+accountColumns, owner, currency))
}

// CreateAccountConcat is the concat-sql mistake: the owner pasted into the SQL text.
func (q *Queries) CreateAccountConcat(ctx context.Context, owner, currency string) (Account, error) {
	return scanAccount(q.db.QueryRowContext(ctx, fmt.Sprintf("INSERT INTO accounts (owner, currency) VALUES ('%s', '%s') RETURNING %s", owner, currency, accountColumns)))
}

// name: GetAccount :one
func (q *Queries) GetAccount(ctx context.Context, id int64) (Account, error) {
	return scanAccount(q.db.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM accounts WHERE id = $1", id))
}

// name: GetAccountsForUpdate :many (both rows locked, in id order: no deadlock)
func (q *Queries) GetAccountsForUpdate(ctx context.Context, a, b int64) (map[int64]Account, error) {
	return q.accounts(ctx, "SELECT "+accountColumns+" FROM accounts WHERE id IN ($1, $2) ORDER BY id FOR UPDATE", a, b)
}

// name: GetAccounts :many (no lock)
func (q *Queries) GetAccounts(ctx context.Context, a, b int64) (map[int64]Account, error) {
	return q.accounts(ctx, "SELECT "+accountColumns+" FROM accounts WHERE id IN ($1, $2) ORDER BY id", a, b)
}

func (q *Queries) accounts(ctx context.Context, query string, args ...any) (map[int64]Account, error) {
	rows, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]Account{}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out[a.ID] = a
	}
	return out, rows.Err()
}

// name: AddToBalance :one
func (q *Queries) AddToBalance(ctx context.Context, id, amount int64) (Account, error) {
	return scanAccount(q.db.QueryRowContext(ctx, "UPDATE accounts SET balance = balance + $2 WHERE id = $1 RETURNING "+accountColumns, id, amount))
}

// SetBalance writes an absolute balance (the lost-update mistake computes it in Go).
func (q *Queries) SetBalance(ctx context.Context, id, balance int64) (Account, error) {
	return scanAccount(q.db.QueryRowContext(ctx, "UPDATE accounts SET balance = $2 WHERE id = $1 RETURNING "+accountColumns, id, balance))
}

// name: CreateTransfer :exec
func (q *Queries) CreateTransfer(ctx context.Context, from, to, amount int64) error {
	_, err := q.db.ExecContext(ctx, "INSERT INTO transfers (from_id, to_id, amount) VALUES ($1, $2, $3)", from, to, amount)
	return err
}

// name: ListAccounts :many (keyset: newest first, ids below `before`)
func (q *Queries) ListAccounts(ctx context.Context, before int64, limit int) ([]Account, error) {
	rows, err := q.db.QueryContext(ctx, "SELECT "+accountColumns+" FROM accounts WHERE id < $1 ORDER BY id DESC LIMIT $2", before, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows)
}

// ListAccountsOffset is the offset-pagination mistake.
func (q *Queries) ListAccountsOffset(ctx context.Context, offset int64, limit int) ([]Account, error) {
	rows, err := q.db.QueryContext(ctx, "SELECT "+accountColumns+" FROM accounts ORDER BY id DESC OFFSET $1 LIMIT $2", offset, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows)
}

func collect(rows *sql.Rows) ([]Account, error) {
	defer rows.Close()
	out := []Account{}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
