package apmon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/internal/testkit"
)

// listener is a MonALISA service stand-in on loopback: it keeps every
// datagram it receives.
type listener struct{ *testkit.UDP }

func listen(t *testing.T) *listener { return &listener{testkit.ListenUDP(t)} }

func (l *listener) port() int { return l.Port() }

// datagrams returns what arrived so far, decoded; errs what could not be
// decoded; largest the size of the largest datagram.
func (l *listener) datagrams() []Datagram {
	got, _, _ := l.decoded()
	return got
}

func (l *listener) decoded() (got []Datagram, errs []error, largest int) {
	for _, b := range l.Datagrams() {
		largest = max(largest, len(b))
		d, err := Decode(b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got = append(got, d)
	}
	return got, errs, largest
}

// dest is the listener as a destination with password pw.
func (l *listener) dest(pw string) Destination {
	return Destination{Host: "127.0.0.1", Port: l.port(), Password: pw}
}

// startSender runs a Sender until the test ends; its log goes to the
// returned buffer.
func startSender(t *testing.T, opts SenderOptions) (*Sender, *testkit.SyncBuffer) {
	t.Helper()
	var buf testkit.SyncBuffer
	opts.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := NewSender(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, &buf
}

// report is a batch's messages: the figures, one per processor, and one
// too large for a datagram.
func report(round, processors int) []Message {
	msgs := []Message{{Cluster: "Socorro_Monitor", Node: "node-1", Params: []Param{Int("round", int64(round)), Float("rate", 0.5)}}}
	for p := range processors {
		msgs = append(msgs, Message{Cluster: "Socorro_Monitor_Processors", Node: fmt.Sprintf("processor-%d", p), Params: []Param{Int("pending_jobs", int64(p))}})
	}
	big := Message{Cluster: "Socorro_Monitor_SysInfo", Node: "node-1"}
	for i := range 100 {
		big.Params = append(big.Params, Float(fmt.Sprintf("figure_%03d", i), float64(i)))
	}
	return append(msgs, big)
}

// datagrams is how many datagrams msgs make.
func datagrams(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		n += len(Split(Datagram{Version: Version, Cluster: m.Cluster, Node: m.Node}, m.Params))
	}
	return n
}

func TestSenderDeliversToEveryDestination(t *testing.T) {
	t.Parallel()
	a, b := listen(t), listen(t)
	s, _ := startSender(t, SenderOptions{})
	dests := []Destination{a.dest(""), b.dest("s3cret"), a.dest("")} // a twice: sent to once
	const rounds, processors = 3, 20
	perRound := datagrams(report(0, processors))
	for r := range rounds {
		s.Send(Batch{Dests: dests, MaxRate: 1000, Msgs: report(r, processors)})
		// Each round must be taken before the next is offered: Send keeps
		// the newest only.
		testkit.Eventually(t, "the round to arrive", func() bool {
			return len(a.datagrams()) >= (r+1)*perRound && len(b.datagrams()) >= (r+1)*perRound
		})
	}
	for name, l := range map[string]*listener{"plain": a, "with password": b} {
		got := l.datagrams()
		_, errs, largest := l.decoded()
		if len(got) != rounds*perRound || len(errs) > 0 {
			t.Fatalf("%s: %d datagrams, errors %v; want %d", name, len(got), errs, rounds*perRound)
		}
		if largest > MaxDatagram {
			t.Errorf("%s: a datagram of %d bytes", name, largest)
		}
		params := 0
		for i, d := range got {
			if d.Seq != int32(i+1) {
				t.Errorf("%s: datagram %d has sequence number %d", name, i, d.Seq)
			}
			if d.InstanceID != s.InstanceID() || d.Version != Version || d.Time == 0 {
				t.Errorf("%s: datagram %d: instance %d, version %q, time %d", name, i, d.InstanceID, d.Version, d.Time)
			}
			if want := map[*listener]string{a: "", b: "s3cret"}[l]; d.Password != want {
				t.Errorf("%s: password %q", name, d.Password)
			}
			if d.Cluster == "Socorro_Monitor_SysInfo" {
				params += len(d.Params)
			}
		}
		if params != rounds*100 {
			t.Errorf("%s: the split message arrived with %d parameters, want %d", name, params, rounds*100)
		}
	}
}

// fakeResolver resolves listed hosts to loopback; others fail.
type fakeResolver struct {
	mu    sync.Mutex
	known map[string]bool
	calls atomic.Int32
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.calls.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if addr, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{addr}, nil
	}
	if r.known[host] {
		return []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r *fakeResolver) set(host string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.known[host] = ok
}

// TestSenderUnresolvableDestination: a host that does not resolve is
// logged once, however many rounds, while the other destination receives
// every round; when it resolves it receives too, and that is logged once.
func TestSenderUnresolvableDestination(t *testing.T) {
	t.Parallel()
	good, late := listen(t), listen(t)
	res := &fakeResolver{known: map[string]bool{}}
	s, log := startSender(t, SenderOptions{Resolver: res})
	dests := []Destination{{Host: "monalisa.invalid", Port: late.port()}, good.dest("")}
	perRound := datagrams(report(0, 0))
	for r := range 5 {
		s.Send(Batch{Dests: dests, MaxRate: 1000, Msgs: report(r, 0)})
		testkit.Eventually(t, "the good destination's round", func() bool { return len(good.datagrams()) >= perRound*(r+1) })
	}
	testkit.Eventually(t, "several lookups", func() bool { return res.calls.Load() >= 2 })
	if n := strings.Count(log.String(), "does not resolve"); n != 1 {
		t.Errorf("%d lines about the unresolvable host, want 1:\n%s", n, log)
	}
	if !strings.Contains(log.String(), "destination=monalisa.invalid:") {
		t.Errorf("the line does not name the destination:\n%s", log)
	}

	res.set("monalisa.invalid", true)
	s.Send(Batch{Dests: dests, MaxRate: 1000, Msgs: report(5, 0)})
	testkit.Eventually(t, "the late destination to receive", func() bool { return len(late.datagrams()) == perRound })
	testkit.Eventually(t, "the recovery logged", func() bool { return strings.Contains(log.String(), "go to the destination again") })
	if d := late.datagrams()[0]; d.Seq != 1 {
		t.Errorf("the first datagram the late destination gets has sequence number %d, want 1", d.Seq)
	}
}

// TestSenderRateRule: a burst within one second to a destination whose
// rate is 2 a second lets 26 datagrams through (the estimate
// int(sent*0.0799556) reaches 2 at the 27th), drops the rest, and says so
// once.
func TestSenderRateRule(t *testing.T) {
	t.Parallel()
	slow := listen(t)
	at := time.Unix(1767225600, 0)
	s, log := startSender(t, SenderOptions{Now: func() time.Time { return at }})
	s.Send(Batch{Dests: []Destination{slow.dest("")}, MaxRate: 2, Msgs: report(0, 98)}) // 101 datagrams
	testkit.Eventually(t, "the burst to arrive", func() bool { return len(slow.datagrams()) == 26 })
	testkit.Eventually(t, "the drop logged", func() bool { return strings.Contains(log.String(), "dropping ApMon datagrams") })
	if n := strings.Count(log.String(), "dropping ApMon datagrams"); n != 1 {
		t.Errorf("%d lines about dropping, want 1:\n%s", n, log)
	}
	for i, d := range slow.datagrams() {
		if d.Seq != int32(i+1) {
			t.Fatalf("datagram %d has sequence number %d: dropped datagrams take no number", i, d.Seq)
		}
	}
}

func TestOfferKeepsTheNewest(t *testing.T) {
	t.Parallel()
	ch := make(chan Batch, 1)
	offer(ch, Batch{MaxRate: 1})
	offer(ch, Batch{MaxRate: 2})
	if b := <-ch; b.MaxRate != 2 {
		t.Errorf("got batch %d, want the newest", b.MaxRate)
	}
	select {
	case b := <-ch:
		t.Errorf("a second batch %d waits", b.MaxRate)
	default:
	}
}

func TestSenderStopsWithContext(t *testing.T) {
	t.Parallel()
	s, err := NewSender(SenderOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	l := listen(t)
	s.Send(Batch{Dests: []Destination{l.dest("")}, MaxRate: 20, Msgs: report(0, 0)})
	cancel()
	select {
	case <-done:
	case <-time.After(testkit.WaitTimeout()):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := s.conn.WriteToUDP([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: l.port()}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the socket is still open after Run: %v", err)
	}
}
