package main

import (
	"encoding/json"
	"log"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

type server struct {
	cfg config
	bug variant
	hub *hub
	bus *bus
}

type client struct {
	srv  *server
	conn *websocket.Conn
	send chan []byte
	room string
	user string
}

// inbound is what a client sends.
type inbound struct {
	Text string `json:"text"`
}

// outbound is what every client of the room receives.
type outbound struct {
	Room string `json:"room"`
	From string `json:"from"`
	Text string `json:"text"`
	Node string `json:"node"`
	TS   int64  `json:"ts"`
}

func (s *server) checkOrigin(r *http.Request) bool {
	if s.bug.noOriginCheck {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		// Not a browser: nothing to protect against.
		return true
	}
	if s.bug.rawOrigins {
		for _, o := range s.cfg.rawOrigins {
			if o == origin {
				return true
			}
		}
		return false
	}
	return s.cfg.origins[normOrigin(origin)]
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.checkOrigin(r) {
		log.Printf("refused origin %q", r.Header.Get("Origin"))
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	up := websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// Checked above, with a clear 403.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	room := r.URL.Query().Get("room")
	if room == "" {
		room = "lobby"
	}
	user := r.URL.Query().Get("user")
	if user == "" {
		user = "anonymous"
	}
	c := &client{srv: s, conn: conn, send: make(chan []byte, s.cfg.sendBuffer), room: room, user: user}
	s.hub.register <- c
	go c.writePump()
	c.readPump()
}

// readPump reads the client's messages and publishes them, in order, until the
// connection fails or the client stops answering pings (read deadline).
func (c *client) readPump() {
	defer func() {
		c.srv.hub.unregister <- c
		c.conn.Close()
	}()
	cfg := c.srv.cfg
	c.conn.SetReadLimit(cfg.maxMessage)
	if !c.srv.bug.noPing {
		c.conn.SetReadDeadline(time.Now().Add(cfg.pongWait))
		c.conn.SetPongHandler(func(string) error {
			return c.conn.SetReadDeadline(time.Now().Add(cfg.pongWait))
		})
	}
	for {
		kind, data, err := c.conn.ReadMessage()
		if err != nil {
			// Also a message over the read limit: gorilla/websocket closes with 1009.
			return
		}
		if !c.srv.bug.noPing {
			// Any frame shows the client is alive.
			c.conn.SetReadDeadline(time.Now().Add(cfg.pongWait))
		}
		// Only a text frame holding a JSON object with a non-empty string "text"
		// is a message; anything else ({}, {"text": 5}, not JSON, binary) is ignored.
		var in inbound
		if kind != websocket.TextMessage || json.Unmarshal(data, &in) != nil || in.Text == "" {
			continue
		}
		out, _ := json.Marshal(outbound{Room: c.room, From: c.user, Text: in.Text, Node: cfg.nodeID, TS: time.Now().UnixMilli()})
		if c.srv.bug.localOnly || c.srv.bug.doubleDelivery {
			c.srv.hub.broadcast <- delivery{room: c.room, data: out}
			if c.srv.bug.localOnly {
				continue
			}
		}
		if err := c.srv.bus.publish(c.room, out); err != nil {
			// Redis is away: this message is lost; the client may send it again.
			log.Printf("publish to room %s: %v", c.room, err)
		}
	}
}

// writePump is the only writer of the connection: messages from the hub, and pings.
func (c *client) writePump() {
	cfg := c.srv.cfg
	ticker := time.NewTicker(cfg.pingInterval)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	deadline := func() {
		if !c.srv.bug.blockingHub {
			c.conn.SetWriteDeadline(time.Now().Add(cfg.writeWait))
		}
	}
	for {
		select {
		case msg, ok := <-c.send:
			deadline()
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "too slow"))
				return
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
		case <-ticker.C:
			if c.srv.bug.noPing {
				continue
			}
			deadline()
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}
