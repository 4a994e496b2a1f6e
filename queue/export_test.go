package queue

import "time"

// StaleLoads returns a Loads whose snapshot is procs (processor id -> load),
// read just now and so slow to read that it stays fresh for LoadsMaxAge: the
// tests' way to see what EnqueueWith does with a snapshot it reuses.
func StaleLoads(procs map[int64]int64) *Loads {
	l := &Loads{readAt: time.Now(), took: time.Hour}
	for id, load := range procs {
		l.procs = append(l.procs, processorLoad{id: id, load: load})
	}
	return l
}
