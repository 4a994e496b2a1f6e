package apmon

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crashmonitor/monitor/internal/loop"
)

// Bounds of the sender.
const (
	// resolveTimeout bounds one lookup of a destination's host.
	resolveTimeout = 5 * time.Second
	// resolveAgain is how long a resolved address is used before the host
	// is looked up again (as often as the libraries re-read their
	// configuration).
	resolveAgain = 10 * time.Minute
	// seqWrap is where sequence numbers wrap, as in the libraries.
	seqWrap = 2000000000
)

// Message is a report for one cluster and node: one datagram, or several
// when its parameters do not fit in MaxDatagram bytes.
type Message struct {
	Cluster string
	Node    string
	Params  []Param
}

// Batch is what one report round sends: every message to every destination
// (services; pages are the caller's to read), under the rate rule's MaxRate
// (datagrams a second to one destination).
type Batch struct {
	Dests   []Destination
	MaxRate int
	Msgs    []Message
}

// Resolver looks hosts up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// SenderOptions configures a Sender. Only Logger is required.
type SenderOptions struct {
	// Logger receives a line when a destination starts failing (its host
	// does not resolve, or a datagram cannot be sent to it) and one when it
	// works again, and the same for the rate rule dropping datagrams.
	Logger *slog.Logger
	// Resolver looks the destinations' hosts up (net.DefaultResolver).
	Resolver Resolver
	// Now is the clock (time.Now), IntN the rate rule's random source
	// (rand.IntN); tests set them.
	Now  func() time.Time
	IntN func(n int) int
}

// Sender sends batches of messages to their destinations over UDP. Each
// destination has a worker of its own, so that one whose host is slow to
// resolve delays no other; a worker still busy with a batch when the next
// arrives gets the newest only. Send never blocks.
type Sender struct {
	opts     SenderOptions
	conn     *net.UDPConn
	instance int32
	in       chan Batch
	// seqs are the destinations' sequence numbers, by destination; kept
	// when a destination leaves the list, so that it continues its
	// sequence if it comes back, as the libraries keep theirs.
	seqs sync.Map // string -> *atomic.Int32
}

// NewSender opens the UDP socket the datagrams leave from and draws the
// process's instance id. Call Run to send.
func NewSender(opts SenderOptions) (*Sender, error) {
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IntN == nil {
		opts.IntN = rand.IntN
	}
	conn, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, fmt.Errorf("open the ApMon UDP socket: %w", err)
	}
	return &Sender{opts: opts, conn: conn, instance: rand.Int32N(0x7FFFFFFF), in: make(chan Batch, 1)}, nil
}

// InstanceID returns the id every datagram of this sender carries.
func (s *Sender) InstanceID() int32 { return s.instance }

// Send hands b to Run without waiting; a batch Run has not taken yet is
// replaced.
func (s *Sender) Send(b Batch) { offer(s.in, b) }

// offer puts b in ch (capacity 1), replacing what waits there, without
// blocking; it must be ch's only writer.
func offer(ch chan Batch, b Batch) {
	select {
	case ch <- b:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- b:
	default:
	}
}

// Run delivers the batches given to Send until ctx is done, then closes the
// socket; it returns after its workers.
func (s *Sender) Run(ctx context.Context) {
	var workers sync.WaitGroup
	defer s.conn.Close()
	defer workers.Wait()
	active := map[string]*worker{}
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-s.in:
			keep := map[string]bool{}
			for _, d := range b.Dests {
				key := d.String()
				if keep[key] {
					continue // listed twice: sent to once
				}
				keep[key] = true
				w := active[key]
				if w == nil {
					w = s.newWorker(d)
					active[key] = w
					workers.Go(func() { w.run(ctx) })
				}
				offer(w.in, b)
			}
			for key, w := range active {
				if !keep[key] {
					close(w.in)
					delete(active, key)
				}
			}
		}
	}
}

// worker sends to one destination.
type worker struct {
	s    *Sender
	dest Destination
	in   chan Batch
	seq  *atomic.Int32
	rate rateLimit
	log  *slog.Logger

	addr     netip.AddrPort
	resolved time.Time
	failing  loop.Episode // the host does not resolve, or sending fails
	dropping loop.Episode // the rate rule drops datagrams
}

func (s *Sender) newWorker(d Destination) *worker {
	seq, _ := s.seqs.LoadOrStore(d.String(), new(atomic.Int32))
	return &worker{
		s: s, dest: d, in: make(chan Batch, 1), seq: seq.(*atomic.Int32),
		rate: rateLimit{intn: s.opts.IntN},
		log:  s.opts.Logger.With("destination", d.Masked()),
	}
}

// run delivers batches until ctx is done or the destination leaves.
func (w *worker) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case b, ok := <-w.in:
			if !ok {
				return
			}
			w.deliver(ctx, b)
		}
	}
}

// deliver sends b's messages, each split as needed, subject to the rate
// rule, each datagram numbered and stamped as it goes.
func (w *worker) deliver(ctx context.Context, b Batch) {
	if !w.resolve(ctx) {
		return
	}
	w.rate.max = b.MaxRate
	dropped := 0
	for _, m := range b.Msgs {
		d := Datagram{Version: Version, Password: w.dest.Password, InstanceID: w.s.instance, Cluster: m.Cluster, Node: m.Node}
		for _, block := range Split(d, m.Params) {
			now := w.s.opts.Now()
			if !w.rate.allow(now) {
				dropped++
				continue
			}
			d.Seq = w.nextSeq()
			d.Params, d.Time = block, int32(now.Unix())
			if _, err := w.s.conn.WriteToUDPAddrPort(d.Encode(), w.addr); err != nil {
				if w.failing.Begin() {
					w.log.Warn("cannot send ApMon datagrams to the destination; the others still receive theirs", "error", err)
				}
				return
			}
		}
	}
	if w.failing.End() {
		w.log.Info("ApMon datagrams go to the destination again")
	}
	if dropped > 0 && w.dropping.Begin() {
		w.log.Warn("dropping ApMon datagrams: more than apmonMaxMsgRate a second to the destination", "dropped", dropped, "apmonMaxMsgRate", b.MaxRate)
	} else if dropped == 0 && w.dropping.End() {
		w.log.Info("ApMon datagrams no longer dropped by the rate rule")
	}
}

// nextSeq returns the next sequence number: 1, 2, ..., 1999999999, 0, 1...
func (w *worker) nextSeq() int32 {
	for {
		old := w.seq.Load()
		next := (old + 1) % seqWrap
		if w.seq.CompareAndSwap(old, next) {
			return next
		}
	}
}

// resolve looks the host up when it has no address yet or the address is
// old, and reports whether there is an address to send to. A host that
// stops resolving keeps its last address.
func (w *worker) resolve(ctx context.Context) bool {
	now := w.s.opts.Now()
	if w.addr.IsValid() && now.Sub(w.resolved) < resolveAgain {
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	addrs, err := w.s.opts.Resolver.LookupNetIP(rctx, "ip", w.dest.Host)
	cancel()
	if ctx.Err() != nil {
		return false
	}
	if err == nil && len(addrs) == 0 {
		err = fmt.Errorf("no address for %s", w.dest.Host)
	}
	if err != nil {
		if w.addr.IsValid() {
			return true
		}
		if w.failing.Begin() {
			w.log.Warn("ApMon destination does not resolve; nothing is sent to it until it does, the others still receive theirs", "error", err)
		}
		return false
	}
	addr := addrs[0]
	for _, a := range addrs {
		if a.Unmap().Is4() { // as the libraries, which know IPv4 only
			addr = a
			break
		}
	}
	w.addr, w.resolved = netip.AddrPortFrom(addr.Unmap(), uint16(w.dest.Port)), now
	return true
}
