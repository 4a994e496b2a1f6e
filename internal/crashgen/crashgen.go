// Package crashgen writes synthetic crashes into a storage tree exactly as a
// collector does, for the demo, the benchmarks and the tests: each pair goes
// through crashstore's NewEntry (the links first, then the dump, then the
// json), so the monitor meets the trees it meets in production, half-written
// pairs included while a generation runs.
//
// Crash ids are Socorro ooids: uuid-shaped, with the name-branch depth digit
// and the crash date (D YY MM DD) as their last seven characters. They are
// derived from a seed and the pair's index, so a generation can be told again
// which ids it wrote (Generator.ID) without keeping a list of millions.
package crashgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
)

// Defaults for the Options fields left zero.
const (
	// DefaultDepth is the collectors' storageDepth: two radix levels in
	// the name branch (about 64K leaf directories).
	DefaultDepth = 2
	// DefaultWebhead names the collector host when Options.Webheads is
	// empty.
	DefaultWebhead = "webhead01"
	// chunk is how many consecutive indexes a worker takes at once, so
	// that neighbouring pairs (same minute slot) are written together.
	chunk = 64
)

// Options describes a generation.
type Options struct {
	// Count is the number of pairs to write.
	Count int
	// DumpSize is the size of each dump file in bytes. Each dump starts
	// with its crash id (when it has room for it), so no two are equal.
	DumpSize int
	// Webheads are the collector host names; pair i is received by
	// Webheads[i % len]. Empty means DefaultWebhead.
	Webheads []string
	// Submitted is the submission time of the last pair. It picks the
	// daily directory and the date-branch slot. Zero with a zero Spread is
	// live mode: each pair is submitted at the moment it is written, as a
	// collector does, so pairs only ever land in the current slot (the
	// only one a running monitor never prunes). Zero with a Spread means
	// the time of New.
	Submitted time.Time
	// Spread spreads the submissions evenly over [Submitted-Spread,
	// Submitted], in index order, so that pair i+1 is never submitted
	// before pair i. Zero submits every pair at Submitted. Writing into
	// past slots while a monitor runs races with its pruning of emptied
	// slots (Write retries such a pair a few times).
	Spread time.Duration
	// CrashDate is the date written in every id's tail. Zero means the
	// date of the pair's own submission time (what a collector does); in
	// live mode, the date of New.
	CrashDate time.Time
	// Depth is the depth digit of the ids, 1 to 4 (zero: DefaultDepth).
	Depth int
	// Seed makes the ids reproducible; zero picks a random seed. Two
	// generations with the same seed write the same ids.
	Seed uint64
	// Workers is the number of goroutines writing pairs (zero: four per
	// CPU, at least 4: the work is system calls, not computation).
	Workers int
}

// Generator writes the pairs that its Options describe.
type Generator struct {
	opts Options
	end  time.Time // Submitted, resolved
	live bool      // each pair submitted when written
}

// New returns a Generator for opts, filling in the defaults. It fails on
// options no collector could produce.
func New(opts Options) (*Generator, error) {
	if opts.Count < 0 {
		return nil, fmt.Errorf("crashgen: negative count %d", opts.Count)
	}
	if opts.DumpSize < 0 {
		return nil, fmt.Errorf("crashgen: negative dump size %d", opts.DumpSize)
	}
	if opts.Spread < 0 {
		return nil, fmt.Errorf("crashgen: negative spread %s", opts.Spread)
	}
	opts.Depth = cmp.Or(opts.Depth, DefaultDepth)
	if opts.Depth < 1 || opts.Depth > 4 {
		return nil, fmt.Errorf("crashgen: depth %d is not between 1 and 4", opts.Depth)
	}
	if len(opts.Webheads) == 0 {
		opts.Webheads = []string{DefaultWebhead}
	}
	for _, w := range opts.Webheads {
		if w == "" || w[0] == '.' || strings.ContainsAny(w, "/\x00") {
			return nil, fmt.Errorf("crashgen: invalid webhead name %q", w)
		}
	}
	if y := opts.CrashDate.UTC().Year(); !opts.CrashDate.IsZero() && (y < 2000 || y > 2099) {
		return nil, fmt.Errorf("crashgen: crash date %s is outside the years 2000-2099 an ooid can carry",
			opts.CrashDate.Format(time.DateOnly))
	}
	if opts.Seed == 0 {
		opts.Seed = rand.Uint64() | 1
	}
	if opts.Workers <= 0 {
		opts.Workers = max(4, 4*runtime.GOMAXPROCS(0))
	}
	g := &Generator{opts: opts, end: opts.Submitted, live: opts.Submitted.IsZero() && opts.Spread == 0}
	if g.end.IsZero() {
		g.end = time.Now()
	}
	g.end = g.end.UTC()
	if y := g.end.Add(-opts.Spread).Year(); opts.CrashDate.IsZero() && (y < 2000 || g.end.Year() > 2099) {
		return nil, fmt.Errorf("crashgen: submission times outside the years 2000-2099 an ooid can carry")
	}
	return g, nil
}

// Options returns the generator's options with the defaults filled in (the
// seed among them).
func (g *Generator) Options() Options { return g.opts }

// Submitted returns the submission time of pair i; in live mode, the time
// New was called (each pair is really submitted when it is written).
func (g *Generator) Submitted(i int) time.Time {
	if g.opts.Spread == 0 || g.opts.Count < 2 {
		return g.end
	}
	step := g.opts.Spread / time.Duration(g.opts.Count-1)
	return g.end.Add(-g.opts.Spread + time.Duration(i)*step)
}

// Webhead returns the collector host that receives pair i.
func (g *Generator) Webhead(i int) string {
	return g.opts.Webheads[i%len(g.opts.Webheads)]
}

// ID returns the crash id of pair i: an ooid whose first 64 bits are a
// bijective mix of the seed and i (so the ids of one generation are distinct
// and spread evenly over the name branch), ending in the depth digit and the
// crash date.
func (g *Generator) ID(i int) string {
	date := g.opts.CrashDate
	if date.IsZero() {
		date = g.Submitted(i)
	}
	return ooid(g.opts.Seed, uint64(i), g.opts.Depth, date.UTC())
}

// ooid builds the id of index i of a seed. For a fixed seed, i -> a is a
// bijection, so the ids of one generation never collide; those of two seeds
// collide with negligible probability.
func ooid(seed, i uint64, depth int, date time.Time) string {
	a := mix(i ^ mix(seed))
	b := mix(a ^ 0x9e3779b97f4a7c15)
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%05x%d%s",
		uint32(a>>32), uint16(a>>16), uint16(a), uint16(b>>48), (b>>20)&0xfffff,
		depth, date.Format("060102"))
}

// mix is the splitmix64 finalizer: a bijection of the 64-bit integers.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Result reports a generation.
type Result struct {
	// Written counts the pairs completely written.
	Written int
	// Elapsed is the wall time of Write.
	Elapsed time.Duration
}

// PairsPerSecond is the generation's throughput.
func (r Result) PairsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Written) / r.Elapsed.Seconds()
}

// Write writes the Count pairs into store with Workers goroutines, each pair
// through store.NewEntry, and returns when all are written, on the first
// error, or when ctx is done. Pairs are handed out in index order, in chunks,
// so submission order and writing order roughly agree; with several workers a
// pair may be complete before an earlier one.
func (g *Generator) Write(ctx context.Context, store *crashstore.Store) (Result, error) {
	start := time.Now()
	var (
		next    atomic.Int64
		written atomic.Int64
		errOnce sync.Once
		first   error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errOnce.Do(func() { first = err; cancel() })
	}
	var wg sync.WaitGroup
	for range min(g.opts.Workers, max(1, (g.opts.Count+chunk-1)/chunk)) {
		wg.Go(func() {
			dump := make([]byte, g.opts.DumpSize)
			fillDump(dump)
			var json []byte
			for ctx.Err() == nil {
				lo := int(next.Add(chunk)) - chunk
				if lo >= g.opts.Count {
					return
				}
				for i := lo; i < min(lo+chunk, g.opts.Count); i++ {
					id := g.ID(i)
					copy(dump, id)
					if err := g.write(store, i, id, dump, &json); err != nil {
						fail(fmt.Errorf("write pair %d: %w", i, err))
						return
					}
					written.Add(1)
				}
			}
		})
	}
	wg.Wait()
	res := Result{Written: int(written.Load()), Elapsed: time.Since(start)}
	if first != nil {
		return res, first
	}
	if res.Written < g.opts.Count {
		return res, fmt.Errorf("generation stopped after %d of %d pairs: %w", res.Written, g.opts.Count, ctx.Err())
	}
	return res, nil
}

// writeAttempts bounds the tries of one pair: a running monitor prunes an
// emptied past slot directory, and may do so between the moment NewEntry
// makes it and the moment it links into it (NewEntry itself tries twice).
const writeAttempts = 3

// write writes pair i through NewEntry, with its json built in *json.
func (g *Generator) write(store *crashstore.Store, i int, id string, dump []byte, json *[]byte) error {
	var err error
	for range writeAttempts {
		at := g.Submitted(i)
		if g.live {
			at = time.Now().UTC()
		}
		*json = g.appendJSON((*json)[:0], i, id, at)
		if _, err = store.NewEntry(id, g.Webhead(i), at, dump, *json); !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

// appendJSON appends the metadata of pair i, shaped like a collector's.
func (g *Generator) appendJSON(b []byte, i int, id string, at time.Time) []byte {
	return fmt.Appendf(b, `{"uuid":%q,"ProductName":"CrashSim","Version":"1.0","submitted_timestamp":%q,"webhead":%q,"index":%d}`+"\n",
		id, at.Format(time.RFC3339Nano), g.Webhead(i), i)
}

// fillDump fills a dump with a fixed pattern resembling a minidump header.
func fillDump(b []byte) {
	const pattern = "MDMP\x93\xa7\x00\x00crashsim synthetic minidump "
	for i := range b {
		b[i] = pattern[i%len(pattern)]
	}
}
