package faultsuite

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/loop"
)

// crashKind is how a collector left a crash.
type crashKind int

const (
	// complete: a whole pair in the standard tree, for the scanner.
	kindStandard crashKind = iota
	// a pair whose collector died after the dump: it stays in the inbox.
	kindIncomplete
	// a whole pair in the deferred tree: processed only when requested.
	kindDeferred
)

// crash is one crash a collector wrote.
type crash struct {
	id        string
	kind      crashKind
	entry     crashstore.Entry
	requested bool // a priority request for it was committed
}

// processed reports whether the crash must end up processed: every complete
// standard pair, and the deferred ones a user asked for.
func (c *crash) processed() bool {
	return c.kind == kindStandard || c.kind == kindDeferred && c.requested
}

// registry is every crash written and every request made, for the checker.
type registry struct {
	mu            sync.Mutex
	byID          map[string]*crash
	standard      []string // complete standard crashes in writing order
	deferredOpen  []string // deferred crashes not requested yet
	deferredAsked []string // deferred crashes requested already
	ghosts        map[string]bool
	requests      int // committed requests
	hostile       int // of which not crash ids
	repeated      int // of which for a deferred crash asked for before
}

func newRegistry() *registry {
	return &registry{byID: map[string]*crash{}, ghosts: map[string]bool{}}
}

// add records a crash once its collector finished with it.
func (r *registry) add(c *crash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[c.id] = c
	switch c.kind {
	case kindStandard:
		r.standard = append(r.standard, c.id)
	case kindDeferred:
		r.deferredOpen = append(r.deferredOpen, c.id)
	}
}

// taken reports whether id was used already (written, or asked for as a
// crash that never existed).
func (r *registry) taken(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id] != nil || r.ghosts[id]
}

// all returns every crash written.
func (r *registry) all() []*crash {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*crash, 0, len(r.byID))
	for _, c := range r.byID {
		out = append(out, c)
	}
	return out
}

// counts returns how many crashes of each kind were written, and how many
// deferred ones were requested.
func (r *registry) counts() (standard, incomplete, deferred, requested int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.byID {
		switch c.kind {
		case kindStandard:
			standard++
		case kindIncomplete:
			incomplete++
		case kindDeferred:
			deferred++
			if c.requested {
				requested++
			}
		}
	}
	return
}

// world is what surrounds the monitors: the trees, the collectors writing
// into them and the users asking for crashes.
type world struct {
	t                  *testing.T
	standard, deferred *crashstore.Store
	pool               *pgxpool.Pool // the reporter's connections
	reg                *registry
	slow               sync.WaitGroup // pairs whose json is still to come
}

// newID returns a crash id of today (depth 2) no one used yet.
func (w *world) newID(rng *rand.Rand) string {
	for {
		a, b := rng.Uint64(), rng.Uint64()
		id := fmt.Sprintf("%08x-%04x-%04x-%04x-%05x2%s", uint32(a>>32), uint16(a>>16), uint16(a), uint16(b>>48),
			(b>>20)&0xfffff, time.Now().UTC().Format("060102"))
		if !w.reg.taken(id) {
			return id
		}
	}
}

// dumpOf and jsonOf are the contents a collector writes for id: distinct
// for each crash, of varied sizes, so that the checker can compare the
// archives byte for byte.
func dumpOf(id string) []byte {
	h := fnv.New32a()
	h.Write([]byte(id))
	n := 64 + int(h.Sum32()%4000)
	b := make([]byte, n)
	pattern := "MDMP\x93\xa7\x00\x00 fault suite dump " + id + "\n"
	for i := range b {
		b[i] = pattern[i%len(pattern)]
	}
	return b
}

func jsonOf(id string) []byte {
	return fmt.Appendf(nil, `{"uuid":%q,"ProductName":"FaultSuite","Version":"1.0"}`+"\n", id)
}

// collect writes crashes until ctx ends, in bursts at random intervals, as
// several collectors do: mostly complete standard pairs (one in ten written
// slowly, its json arriving up to 0.7 s after its dump), one in ten into the
// deferred tree, one in fifty left without its json (the collector died).
// Now and then a burst is a few hundred pairs, as from a collector catching
// up, so that the monitor's passes are long enough for a kill to land in
// the middle of one.
func (w *world) collect(ctx context.Context, rng *rand.Rand) {
	for {
		burst := 1 + rng.IntN(6)
		if rng.IntN(200) < 3 {
			burst = 100 + rng.IntN(200)
		}
		for range burst {
			switch r := rng.Float64(); {
			case r < 0.02:
				w.write(w.standard, kindIncomplete, w.newID(rng), 0)
			case r < 0.12:
				w.write(w.deferred, kindDeferred, w.newID(rng), 0)
			case r < 0.21:
				w.write(w.standard, kindStandard, w.newID(rng), time.Duration(100+rng.IntN(600))*time.Millisecond)
			default:
				w.write(w.standard, kindStandard, w.newID(rng), 0)
			}
		}
		if !loop.Sleep(ctx, time.Duration(20+rng.IntN(200))*time.Millisecond) {
			return
		}
	}
}

// writeAttempts bounds the tries of one pair: a running monitor prunes an
// emptied date directory, and may do so between the moment a collector makes
// it and the moment it links into it.
const writeAttempts = 5

// write writes crash id into s as a collector does: the links, then the
// dump, then (after slow, on a goroutine of its own, when slow is not zero)
// the json; an incomplete crash gets no json. The crash is registered once
// its collector is done with it.
func (w *world) write(s *crashstore.Store, kind crashKind, id string, slow time.Duration) {
	var e crashstore.Entry
	var err error
	webhead := fmt.Sprintf("web%d", 1+int(id[0])%3) // three collectors
	for range writeAttempts {
		if kind == kindStandard && slow == 0 || kind == kindDeferred {
			e, err = s.NewEntry(id, webhead, time.Time{}, dumpOf(id), jsonOf(id))
		} else {
			e, err = s.CreateLinks(id, webhead, time.Time{})
			if err == nil {
				err = os.WriteFile(e.DumpPath, dumpOf(id), 0o660)
			}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		w.t.Errorf("collector: %s: %v", id, err)
		return
	}
	c := &crash{id: id, kind: kind, entry: e}
	if kind != kindStandard || slow == 0 {
		w.reg.add(c)
		return
	}
	w.slow.Go(func() {
		// The collector's own pace, not a wait for a condition.
		time.Sleep(slow)
		if err := os.WriteFile(e.JSONPath, jsonOf(id), 0o660); err != nil {
			w.t.Errorf("collector: %s: the late json: %v", id, err)
			return
		}
		w.reg.add(c)
	})
}

// writeProbe writes a complete standard crash and a deferred one, and asks
// for the deferred one: once both are cleaned up, the scanner, the priority
// loop, the processors and the cleanup loop have all worked. It returns
// their ids.
func (w *world) writeProbe(rng *rand.Rand) []string {
	std, def := w.newID(rng), w.newID(rng)
	w.write(w.standard, kindStandard, std, 0)
	w.write(w.deferred, kindDeferred, def, 0)
	w.ask(def, "probe")
	return []string{std, def}
}

// hostileRequests are priorityjobs values that are not crash ids: the
// monitor must log and drop them without touching the disk.
func hostileRequests() []string {
	return []string{
		"../../../../etc/passwd", "'; DROP TABLE jobs; --", "x", "\x1b[31mred\x1b[0m",
		"00000000-0000-0000-0000-00000000000", strings.Repeat("f", 255), "",
	}
}

// request asks for crashes until ctx ends, at random intervals, as users of
// the web front end do: deferred crashes (most of them sooner or later, some
// twice), crashes of the standard tree (queued, or about to be), crashes
// that never existed, and strings that are not crash ids.
func (w *world) request(ctx context.Context, rng *rand.Rand) {
	for loop.Sleep(ctx, time.Duration(100+rng.IntN(500))*time.Millisecond) {
		w.reg.mu.Lock()
		var id, what string
		switch r := rng.Float64(); {
		case r < 0.4 && len(w.reg.deferredOpen) > 0:
			i := rng.IntN(len(w.reg.deferredOpen))
			id, what = w.reg.deferredOpen[i], "deferred"
		case r < 0.5 && len(w.reg.deferredAsked) > 0:
			id, what = w.reg.deferredAsked[rng.IntN(len(w.reg.deferredAsked))], "again"
		case r < 0.75 && len(w.reg.standard) > 0:
			recent := w.reg.standard[max(0, len(w.reg.standard)-200):]
			id, what = recent[rng.IntN(len(recent))], "standard"
		case r < 0.9:
			what = "ghost"
		default:
			hostile := hostileRequests()
			id, what = hostile[rng.IntN(len(hostile))], "hostile"
		}
		w.reg.mu.Unlock()
		if what == "ghost" {
			id = w.newID(rng)
			w.reg.mu.Lock()
			w.reg.ghosts[id] = true
			w.reg.mu.Unlock()
		}
		w.ask(id, what)
	}
}

// ask inserts a request as the web front end does, trying again until it is
// committed (PostgreSQL may be down): a request whose commit went unanswered
// is thereby known to exist. It records the request once committed.
func (w *world) ask(id, what string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.t.Context()), time.Minute)
	defer cancel()
	for {
		_, err := w.pool.Exec(ctx, `INSERT INTO priorityjobs (uuid) VALUES ($1)`, id)
		if err == nil {
			break
		}
		if !loop.Sleep(ctx, 200*time.Millisecond) {
			w.t.Errorf("priority request for %q not committed within a minute: %v", id, err)
			return
		}
	}
	w.reg.mu.Lock()
	defer w.reg.mu.Unlock()
	w.reg.requests++
	switch what {
	case "hostile":
		w.reg.hostile++
	case "again":
		w.reg.repeated++
	case "deferred", "probe":
		if c := w.reg.byID[id]; c != nil && !c.requested {
			c.requested = true
			w.reg.deferredOpen = remove(w.reg.deferredOpen, id)
			w.reg.deferredAsked = append(w.reg.deferredAsked, id)
		}
	}
}

// remove returns ids without id.
func remove(ids []string, id string) []string {
	for i, x := range ids {
		if x == id {
			return append(ids[:i], ids[i+1:]...)
		}
	}
	return ids
}
