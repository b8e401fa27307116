package main

import "log"

// delivery is one message for every client of a room on this instance.
type delivery struct {
	room string
	data []byte
}

// hub owns the set of this instance's clients, by room. Only its goroutine
// touches the map; it never waits for a client.
type hub struct {
	bug        variant
	rooms      map[string]map[*client]bool
	register   chan *client
	unregister chan *client
	broadcast  chan delivery
}

func newHub(bug variant) *hub {
	return &hub{
		bug:        bug,
		rooms:      map[string]map[*client]bool{},
		register:   make(chan *client),
		unregister: make(chan *client),
		broadcast:  make(chan delivery, 1024),
	}
}

func (h *hub) remove(c *client) {
	if set, ok := h.rooms[c.room]; ok && set[c] {
		delete(set, c)
		close(c.send)
		if len(set) == 0 {
			delete(h.rooms, c.room)
		}
	}
}

func (h *hub) run() {
	for {
		select {
		case c := <-h.register:
			if h.rooms[c.room] == nil {
				h.rooms[c.room] = map[*client]bool{}
			}
			h.rooms[c.room][c] = true
		case c := <-h.unregister:
			h.remove(c)
		case d := <-h.broadcast:
			for c := range h.rooms[d.room] {
				if h.bug.blockingHub {
					// The mistake: wait for the client, however slow it is.
					c.send <- d.data
					continue
				}
				select {
				case c.send <- d.data:
				default:
					// Its buffer is full: the client is too slow, drop it rather than stall the room.
					log.Printf("dropping slow client %s in room %s", c.user, c.room)
					h.remove(c)
				}
			}
		}
	}
}
