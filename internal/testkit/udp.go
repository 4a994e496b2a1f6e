package testkit

import (
	"net"
	"slices"
	"sync"
	"testing"
)

// UDP is a UDP socket on loopback that keeps every datagram it receives, a
// stand-in for a service the monitor sends to (MonALISA). It is closed at
// cleanup.
type UDP struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
}

// ListenUDP listens on a free loopback port.
func ListenUDP(t testing.TB) *UDP {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadBuffer(4 << 20) // bursts of reports
	u := &UDP{conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			u.mu.Lock()
			u.got = append(u.got, slices.Clone(buf[:n]))
			u.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return u
}

// Addr is the socket's host:port.
func (u *UDP) Addr() string { return u.conn.LocalAddr().String() }

// Port is the socket's port.
func (u *UDP) Port() int { return u.conn.LocalAddr().(*net.UDPAddr).Port }

// Datagrams returns what arrived so far, in order.
func (u *UDP) Datagrams() [][]byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.got)
}
