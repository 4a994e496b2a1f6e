package dispatch

import (
	"fmt"
	"slices"
)

// PriorityStatus says what a priority request needs, or got.
type PriorityStatus int

const (
	// PriorityQueued: a crash found on disk without a job is queued now,
	// with priority 1, owned by the least-loaded live processor.
	PriorityQueued PriorityStatus = iota + 1
	// PriorityRaised: the job already exists, unfinished, with a live or
	// stale owner: it keeps that owner and gets priority at least 1.
	PriorityRaised
	// PriorityMoved: the job already exists, unfinished, but its owner is
	// dead, gone or NULL: it goes to the least-loaded live processor,
	// unstarted, with priority at least 1.
	PriorityMoved
	// PriorityFinished: the job has already finished (or its row is gone:
	// cleanup removed it after it finished); nothing to do.
	PriorityFinished
	// PriorityDropped: a request deleted as it is (malformed, never found).
	PriorityDropped
	// PriorityWaiting: the job is to be queued or moved and no processor is
	// live; nothing changes.
	PriorityWaiting
	// PriorityRetry: the job changed under the transaction (queued by
	// someone else meanwhile, a dead owner checked in again); nothing
	// changed, the next pass sees the new state.
	PriorityRetry
)

var priorityStatusNames = map[PriorityStatus]string{
	PriorityQueued:   "queued",
	PriorityRaised:   "raised",
	PriorityMoved:    "moved",
	PriorityFinished: "finished",
	PriorityDropped:  "dropped",
	PriorityWaiting:  "waiting",
	PriorityRetry:    "retry",
}

func (s PriorityStatus) String() string {
	if n, ok := priorityStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("PriorityStatus(%d)", int(s))
}

// Job is the state of an existing job, as read under its row lock.
type Job struct {
	// Owner is the processor that owns it; 0 for none (NULL).
	Owner int64
	// Finished is set once a processor recorded its result.
	Finished bool
	// OwnerDead is set when the owner is NULL, has no processors row, or
	// is dead (not seen within twice processorCheckInTime).
	OwnerDead bool
}

// DecidePriority is the decision table of one priority request: job is the
// state of its job (nil when no jobs row has the id), onDisk tells whether
// its complete pair was found in a storage tree, anyLive whether any
// processor is live.
//
//	job                           on disk  decision
//	none                          no       finished (processed and cleaned up, or never there: the caller looked)
//	none                          yes      queued
//	finished                      -        finished
//	unfinished, owner dead/none   -        moved
//	unfinished, owner live/stale  -        raised (a job is never taken from an owner that may be working on it)
//
// A request to queue or move waits while no processor is live.
func DecidePriority(job *Job, onDisk, anyLive bool) PriorityStatus {
	var s PriorityStatus
	switch {
	case job == nil && !onDisk, job != nil && job.Finished:
		return PriorityFinished
	case job == nil:
		s = PriorityQueued
	case job.OwnerDead:
		s = PriorityMoved
	default:
		return PriorityRaised
	}
	if !anyLive {
		return PriorityWaiting
	}
	return s
}

// PriorityDecision is what a priority request needs.
type PriorityDecision struct {
	// ID is the request.
	ID     string
	Status PriorityStatus
	// Owner is the job's owner once the decision is carried out (Queued,
	// Raised, Moved); From is the owner a Moved job had (0 for none).
	Owner, From int64
}

// PlanPriority decides each request of ids, in order (DecidePriority), jobs
// holding the existing jobs by id and onDisk the ids whose complete pair was
// found. The jobs to queue or move get their owners from Assign over the live
// processors' loads, among those that have a priority table, hasTable
// (all live ones when none has: the request then waits for the table).
func PlanPriority(ids []string, jobs map[string]Job, onDisk map[string]bool, live []Load, hasTable map[int64]bool) []PriorityDecision {
	out := make([]PriorityDecision, 0, len(ids))
	var assign []int // indexes in out of the jobs to queue or move
	for _, id := range ids {
		d := PriorityDecision{ID: id}
		var job *Job
		if j, ok := jobs[id]; ok {
			job = &j
		}
		d.Status = DecidePriority(job, onDisk[id], len(live) > 0)
		switch d.Status {
		case PriorityQueued:
			assign = append(assign, len(out))
		case PriorityMoved:
			d.From = job.Owner
			assign = append(assign, len(out))
		case PriorityRaised:
			d.Owner = job.Owner
		}
		out = append(out, d)
	}
	if len(assign) > 0 {
		targets := live
		if withTable := slices.DeleteFunc(slices.Clone(live), func(p Load) bool { return !hasTable[p.Processor] }); len(withTable) > 0 {
			targets = withTable
		}
		for i, owner := range Assign(targets, len(assign)) {
			out[assign[i]].Owner = owner
		}
	}
	return out
}
