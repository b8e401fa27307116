package main

import (
	"context"
	"database/sql"
	"errors"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-playground/validator/v10"
	"github.com/lib/pq"
)

type api struct {
	db      *sql.DB
	q       *Queries
	timeout time.Duration
	v       variant
}

// do runs database work under the request's context and QUERY_TIMEOUT_MS,
// and returns when that ends even if the driver does not: lib/pq cannot
// interrupt a query in flight (it asks the server to cancel it, which a server
// that does not answer never does), so the work finishes or fails on its own
// later (the dialer bounds every read). fn must not touch c.
func (a *api) do(c *gin.Context, fn func(ctx context.Context) error) error {
	if a.v.noDeadline {
		return fn(context.Background())
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), a.timeout)
	done := make(chan error, 1)
	go func() {
		defer cancel()
		done <- fn(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dbFailed answers a database error: 503 when the database could not be
// reached in time, 500 when it refused the statement.
func dbFailed(c *gin.Context, err error) {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		log.Printf("database refused: %v", err)
		c.JSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
		return
	}
	log.Printf("database unavailable: %v", err)
	c.JSON(http.StatusServiceUnavailable, gin.H{"error": "database unavailable"})
}

// badRequest turns a binding error into {"errors": {"<json field>": "<rule>"}}.
func badRequest(c *gin.Context, err error) {
	fields := map[string]string{}
	var ve validator.ValidationErrors
	if errors.As(err, &ve) {
		for _, fe := range ve {
			fields[jsonName(fe.Field())] = fe.Tag()
		}
	} else {
		fields["body"] = "not a JSON object of the expected fields: " + err.Error()
	}
	c.JSON(http.StatusBadRequest, gin.H{"errors": fields})
}

// jsonName maps a Go field name (FromID) to its JSON name (from_id).
func jsonName(field string) string {
	switch field {
	case "FromID":
		return "from_id"
	case "ToID":
		return "to_id"
	}
	return strings.ToLower(field)
}

type createAccountRequest struct {
	Owner    string `json:"owner" binding:"required,max=64"`
	Currency string `json:"currency" binding:"required,oneof=USD EUR"`
}

func (a *api) createAccount(c *gin.Context) {
	var req createAccountRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		badRequest(c, err)
		return
	}
	create := a.q.CreateAccount
	if a.v.concatSQL {
		create = a.q.CreateAccountConcat
	}
	var acc Account
	err := a.do(c, func(ctx context.Context) (err error) {
		acc, err = create(ctx, req.Owner, req.Currency)
		return err
	})
	if err != nil {
		dbFailed(c, err)
		return
	}
	c.JSON(http.StatusCreated, acc)
}

func pathID(c *gin.Context) (int64, bool) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		c.JSON(http.StatusBadRequest, gin.H{"errors": gin.H{"id": "a positive whole number"}})
		return 0, false
	}
	return id, true
}

func (a *api) getAccount(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	var acc Account
	err := a.do(c, func(ctx context.Context) (err error) {
		acc, err = a.q.GetAccount(ctx, id)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		c.JSON(http.StatusNotFound, gin.H{"error": "no such account"})
		return
	}
	if err != nil {
		dbFailed(c, err)
		return
	}
	c.JSON(http.StatusOK, acc)
}

func (a *api) listAccounts(c *gin.Context) {
	limit := 10
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			c.JSON(http.StatusBadRequest, gin.H{"errors": gin.H{"limit": "1 to 100"}})
			return
		}
		limit = n
	}
	var after int64
	if s := c.Query("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			c.JSON(http.StatusBadRequest, gin.H{"errors": gin.H{"after": "a cursor from next"}})
			return
		}
		after = n
	}
	var items []Account
	err := a.do(c, func(ctx context.Context) (err error) {
		if a.v.offsetPage {
			items, err = a.q.ListAccountsOffset(ctx, after, limit)
			return err
		}
		before := after
		if before == 0 {
			before = 1<<63 - 1
		}
		items, err = a.q.ListAccounts(ctx, before, limit)
		return err
	})
	if err != nil {
		dbFailed(c, err)
		return
	}
	var next any
	if len(items) == limit {
		if a.v.offsetPage {
			next = strconv.FormatInt(after+int64(limit), 10)
		} else {
			next = strconv.FormatInt(items[len(items)-1].ID, 10)
		}
	}
	c.JSON(http.StatusOK, gin.H{"items": items, "next": next})
}

type amountRequest struct {
	Amount int64 `json:"amount" binding:"required,gt=0"`
}

func (a *api) deposit(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	var req amountRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		badRequest(c, err)
		return
	}
	var acc Account
	err := a.do(c, func(ctx context.Context) (err error) {
		acc, err = a.q.AddToBalance(ctx, id, req.Amount)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		c.JSON(http.StatusNotFound, gin.H{"error": "no such account"})
		return
	}
	if err != nil {
		dbFailed(c, err)
		return
	}
	c.JSON(http.StatusOK, acc)
}

type transferRequest struct {
	FromID int64 `json:"from_id" binding:"required,gt=0"`
	ToID   int64 `json:"to_id" binding:"required,gt=0"`
	Amount int64 `json:"amount" binding:"required,gt=0"`
}

var errInsufficient = errors.New("insufficient funds")
var errNoAccount = errors.New("no such account")

func (a *api) transfer(c *gin.Context) {
	var req transferRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		badRequest(c, err)
		return
	}
	if req.FromID == req.ToID {
		c.JSON(http.StatusBadRequest, gin.H{"errors": gin.H{"to_id": "must differ from from_id"}})
		return
	}
	var from, to Account
	err := a.do(c, func(ctx context.Context) (err error) {
		from, to, err = a.move(ctx, req)
		return err
	})
	switch {
	case errors.Is(err, errInsufficient):
		c.JSON(http.StatusUnprocessableEntity, gin.H{"error": "insufficient funds"})
	case errors.Is(err, errNoAccount):
		c.JSON(http.StatusNotFound, gin.H{"error": "no such account"})
	case err != nil:
		dbFailed(c, err)
	default:
		c.JSON(http.StatusCreated, gin.H{"from": from, "to": to, "amount": req.Amount})
	}
}

// move makes the transfer: one transaction, both rows locked in id order,
// the balance checked under the lock.
func (a *api) move(ctx context.Context, req transferRequest) (Account, Account, error) {
	if a.v.noTx {
		accs, err := a.q.GetAccounts(ctx, req.FromID, req.ToID)
		if err != nil {
			return Account{}, Account{}, err
		}
		if len(accs) != 2 {
			return Account{}, Account{}, errNoAccount
		}
		if accs[req.FromID].Balance < req.Amount {
			return Account{}, Account{}, errInsufficient
		}
		from, err := a.q.AddToBalance(ctx, req.FromID, -req.Amount)
		if err != nil {
			return Account{}, Account{}, err
		}
		to, err := a.q.AddToBalance(ctx, req.ToID, req.Amount)
		if err != nil {
			return Account{}, Account{}, err
		}
		return from, to, a.q.CreateTransfer(ctx, req.FromID, req.ToID, req.Amount)
	}
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return Account{}, Account{}, err
	}
	defer tx.Rollback()
	q := a.q.WithTx(tx)
	var accs map[int64]Account
	if a.v.lostUpdate {
		accs, err = q.GetAccounts(ctx, req.FromID, req.ToID)
	} else {
		accs, err = q.GetAccountsForUpdate(ctx, req.FromID, req.ToID)
	}
	if err != nil {
		return Account{}, Account{}, err
	}
	if len(accs) != 2 {
		return Account{}, Account{}, errNoAccount
	}
	if accs[req.FromID].Balance < req.Amount {
		return Account{}, Account{}, errInsufficient
	}
	var from, to Account
	if a.v.lostUpdate {
		if from, err = q.SetBalance(ctx, req.FromID, accs[req.FromID].Balance-req.Amount); err != nil {
			return Account{}, Account{}, err
		}
		if to, err = q.SetBalance(ctx, req.ToID, accs[req.ToID].Balance+req.Amount); err != nil {
			return Account{}, Account{}, err
		}
	} else {
		if from, err = q.AddToBalance(ctx, req.FromID, -req.Amount); err != nil {
			return Account{}, Account{}, err
		}
		if to, err = q.AddToBalance(ctx, req.ToID, req.Amount); err != nil {
			return Account{}, Account{}, err
		}
	}
	if err := q.CreateTransfer(ctx, req.FromID, req.ToID, req.Amount); err != nil {
		return Account{}, Account{}, err
	}
	return from, to, tx.Commit()
}
