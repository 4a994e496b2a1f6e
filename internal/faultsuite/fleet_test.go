package faultsuite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crashmonitor/monitor/internal/loop"
	"github.com/crashmonitor/monitor/internal/procsim"
)

// fleetSize is the number of processors working at once.
const fleetSize = 3

// fleet is the simulated processors, each run as a supervisor runs a
// processor: started again under its name after it stopped on an error (the
// database went away under it), until it is stopped or crashed on purpose.
type fleet struct {
	t      *testing.T
	pool   *pgxpool.Pool
	base   procsim.Config // Name, WorkTime set per processor
	logger *slog.Logger

	mu      sync.Mutex
	slots   []*procSlot
	named   int // processors named so far
	running sync.WaitGroup

	restarts        atomic.Int64 // runs ended by an error and started again
	crashed, cycled int          // crashed on purpose; stopped cleanly and started again
}

// procSlot is one processor name and the runs under it.
type procSlot struct {
	name     string
	workTime time.Duration
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	proc    *procsim.Processor // the current run (nil before the first)
	crashed bool               // crashed on purpose: no run after it
}

// add starts a processor under a new name.
func (f *fleet) add(rng *rand.Rand) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.named++
	s := &procSlot{name: fmt.Sprintf("sim-%02d", f.named), workTime: time.Duration(2+rng.IntN(20)) * time.Millisecond}
	f.slots = append(f.slots, s)
	f.start(s)
}

// start runs slot s until it is stopped or crashed.
func (f *fleet) start(s *procSlot) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(f.t.Context()))
	s.cancel, s.done = cancel, make(chan struct{})
	f.running.Go(func() {
		defer close(s.done)
		for {
			cfg := f.base
			cfg.Name, cfg.WorkTime = s.name, s.workTime
			p := procsim.New(cfg, procsim.NewSession(f.pool), f.logger.With("processor", s.name))
			s.mu.Lock()
			crashed := s.crashed
			s.proc = p
			s.mu.Unlock()
			if crashed {
				return
			}
			err := p.Run(ctx)
			if ctx.Err() != nil || errors.Is(err, procsim.ErrCrashed) {
				return
			}
			f.restarts.Add(1)
			f.logger.Warn("processor stopped on an error; starting it again", "processor", s.name, "error", err)
			// A supervisor's restart delay.
			if !loop.Sleep(ctx, 300*time.Millisecond) {
				return
			}
		}
	})
}

// crash crashes a random processor (heartbeat and work stop at once, its
// claimed jobs stay started until the monitor reaps it) and starts a new one
// under a new name, as a replacement host would. It returns what it did.
func (f *fleet) crash(rng *rand.Rand) string {
	f.mu.Lock()
	i := rng.IntN(len(f.slots))
	s := f.slots[i]
	f.slots = append(f.slots[:i], f.slots[i+1:]...)
	f.crashed++
	f.mu.Unlock()
	s.mu.Lock()
	s.crashed = true
	if s.proc != nil {
		s.proc.Crash()
	}
	s.mu.Unlock()
	<-s.done
	f.add(rng)
	return "processor " + s.name + " crashed, a new one registered"
}

// cycle stops a random processor cleanly and starts it again under its
// name, as a deployment does. It returns what it did.
func (f *fleet) cycle(rng *rand.Rand) string {
	f.mu.Lock()
	s := f.slots[rng.IntN(len(f.slots))]
	f.cycled++
	f.mu.Unlock()
	s.cancel()
	<-s.done
	f.mu.Lock()
	f.start(s)
	f.mu.Unlock()
	return "processor " + s.name + " stopped cleanly and started again"
}

// stop stops every processor cleanly and waits for them.
func (f *fleet) stop() {
	f.mu.Lock()
	for _, s := range f.slots {
		s.cancel()
	}
	f.mu.Unlock()
	f.running.Wait()
}

// names returns the names of the processors working.
func (f *fleet) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.slots {
		out = append(out, s.name)
	}
	return out
}
