// Package dispatch holds the monitor's scheduling decisions as plain
// functions over plain values, apart from the SQL that reads their inputs and
// writes their outcome (package queue runs each transaction as read state,
// decide here, write):
//
//   - which live processor gets each new or moved job (Assign: the least
//     loaded first, counting the jobs assigned before it);
//   - when a snapshot of the processors' loads may serve another batch
//     (Loads);
//   - what a priority request needs, given the state of its job
//     (DecidePriority, PlanPriority).
//
// The liveness rule itself (live, stale, dead against processorCheckInTime,
// on the database clock) is a SQL function that the statements share,
// monitor_processor_state, added by migration 005.
package dispatch

import (
	"cmp"
	"container/heap"
)

// Load is a live processor and its number of unfinished jobs.
type Load struct {
	Processor int64
	Jobs      int64
}

// Assign gives n jobs their owners, one at a time, each to the processor
// with the least load so far (the jobs assigned before it included), ties
// going to the lowest processor id, and returns the owner of each job in
// order. loads must not be empty; it is not modified.
func Assign(loads []Load, n int) []int64 {
	h := loadHeap(append([]Load(nil), loads...))
	heap.Init(&h)
	owners := make([]int64, n)
	for i := range owners {
		owners[i] = h[0].Processor
		h[0].Jobs++
		heap.Fix(&h, 0)
	}
	return owners
}

// loadHeap is a min-heap of loads ordered by (Jobs, Processor).
type loadHeap []Load

func (h loadHeap) Len() int { return len(h) }
func (h loadHeap) Less(i, j int) bool {
	return cmp.Or(cmp.Compare(h[i].Jobs, h[j].Jobs), cmp.Compare(h[i].Processor, h[j].Processor)) < 0
}
func (h loadHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *loadHeap) Push(x any)   { *h = append(*h, x.(Load)) }
func (h *loadHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
