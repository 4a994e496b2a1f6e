package dispatch

import "time"

// Loads carries the live processors and their loads from one batch to the
// next, for a caller that queues batch after batch (the scanner, for a
// pass). Counting the loads visits every unfinished job, so with a backlog of
// a million that read costs a quarter second, and doing it for every batch of
// a few thousand would make a drain quadratic. With Loads, the snapshot is
// read again only once the time since the last read exceeds RereadFactor
// times what that read took (so for every batch while reads are cheap), and
// at least every MaxAge; in between, the loads are those of the last read
// plus what was assigned since. A processor that comes alive or dies
// meanwhile is seen at the next read. The zero value is ready to use (and
// never fresh); a Loads must not be shared by concurrent users.
type Loads struct {
	procs  []Load
	readAt time.Time
	took   time.Duration
}

// Bounds of a Loads snapshot's reuse.
const (
	RereadFactor = 10
	MaxAge       = 5 * time.Second
)

// NewLoads returns the snapshot procs, read at readAt in took.
func NewLoads(procs []Load, readAt time.Time, took time.Duration) Loads {
	return Loads{procs: procs, readAt: readAt, took: took}
}

// Fresh reports whether the snapshot may serve another batch at now.
func (l *Loads) Fresh(now time.Time) bool {
	return l != nil && len(l.procs) > 0 && now.Sub(l.readAt) < min(RereadFactor*l.took, MaxAge)
}

// Recent reports whether the snapshot was read within MaxAge of now,
// however long its read took: for a caller to whom the loads only balance
// work that is small beside them (priority requests), so that it need not
// count them again for each.
func (l *Loads) Recent(now time.Time) bool {
	return l != nil && len(l.procs) > 0 && now.Sub(l.readAt) < MaxAge
}

// Procs returns the snapshot's processors and loads; the caller must not
// modify them.
func (l *Loads) Procs() []Load { return l.procs }

// Add counts the jobs just assigned to their owners (owner -> jobs).
func (l *Loads) Add(assigned map[int64]int64) {
	if len(assigned) == 0 {
		return
	}
	next := make([]Load, len(l.procs))
	for i, p := range l.procs {
		next[i] = Load{Processor: p.Processor, Jobs: p.Jobs + assigned[p.Processor]}
	}
	l.procs = next
}

// Reset forgets the snapshot: the next batch reads the loads again.
func (l *Loads) Reset() { *l = Loads{} }
