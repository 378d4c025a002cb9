package postback

import (
	"net"
	"sync"
)

// connSet holds the call store's open connections, so that Abort can cut
// the requests in flight: fasthttp has no context to cancel them with.
type connSet struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

// trackedConn leaves its set when closed, by whoever closes it.
type trackedConn struct {
	net.Conn
	set *connSet
}

func (s *connSet) add(c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, set: s}
	s.mu.Lock()
	if s.conns == nil {
		s.conns = make(map[*trackedConn]struct{})
	}
	s.conns[tc] = struct{}{}
	s.mu.Unlock()
	return tc
}

// closeAll closes every open connection, idle or in use.
func (s *connSet) closeAll() {
	s.mu.Lock()
	open := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.conns, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}
