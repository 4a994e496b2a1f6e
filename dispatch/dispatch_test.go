package dispatch

import (
	"slices"
	"testing"
	"time"
)

func TestAssign(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		loads []Load
		n     int
		want  []int64
	}{
		{"idle, ties to the lowest id", []Load{{3, 0}, {1, 0}, {2, 0}}, 5, []int64{1, 2, 3, 1, 2}},
		{"fills the least loaded first", []Load{{1, 4}, {2, 0}, {3, 2}}, 5, []int64{2, 2, 2, 3, 2}},
		{"one processor", []Load{{7, 100}}, 3, []int64{7, 7, 7}},
		{"nothing to assign", []Load{{1, 0}}, 0, []int64{}},
		{"classic 3.5: 1..5 and 15 jobs leave all at 6", []Load{{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}}, 15,
			[]int64{1, 1, 2, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.loads)
			if got := Assign(tc.loads, tc.n); !slices.Equal(got, tc.want) {
				t.Errorf("Assign(%v, %d) = %v, want %v", tc.loads, tc.n, got, tc.want)
			}
			if !slices.Equal(tc.loads, before) {
				t.Errorf("Assign modified its input: %v", tc.loads)
			}
		})
	}
}

func TestLoads(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var zero Loads
	if zero.Fresh(now) {
		t.Error("the zero Loads is fresh")
	}
	var none *Loads
	if none.Fresh(now) {
		t.Error("a nil Loads is fresh")
	}
	l := NewLoads([]Load{{1, 3}, {2, 0}}, now, 100*time.Millisecond)
	if !l.Fresh(now.Add(900 * time.Millisecond)) {
		t.Error("not fresh within 10 times the read's cost")
	}
	if l.Fresh(now.Add(time.Second)) {
		t.Error("fresh after 10 times the read's cost")
	}
	slow := NewLoads([]Load{{1, 3}}, now, time.Hour)
	if slow.Fresh(now.Add(MaxAge)) {
		t.Error("fresh after MaxAge")
	}
	if empty := NewLoads(nil, now, time.Hour); empty.Fresh(now) || empty.Recent(now) {
		t.Error("a snapshot without live processors is fresh")
	}
	if !l.Recent(now.Add(MaxAge-time.Millisecond)) || l.Recent(now.Add(MaxAge)) || none.Recent(now) {
		t.Error("Recent is not: younger than MaxAge, whatever the read cost")
	}
	l.Add(map[int64]int64{2: 5})
	if got, want := l.Procs(), []Load{{1, 3}, {2, 5}}; !slices.Equal(got, want) {
		t.Errorf("after Add: %v, want %v", got, want)
	}
	l.Reset()
	if l.Fresh(now) {
		t.Error("fresh after Reset")
	}
}

func TestDecidePriority(t *testing.T) {
	t.Parallel()
	liveOwner := &Job{Owner: 1}
	deadOwner := &Job{Owner: 2, OwnerDead: true}
	noOwner := &Job{OwnerDead: true}
	finished := &Job{Owner: 1, Finished: true}
	finishedDead := &Job{Owner: 2, Finished: true, OwnerDead: true}
	for _, tc := range []struct {
		name    string
		job     *Job
		onDisk  bool
		anyLive bool
		want    PriorityStatus
	}{
		{"no job, not on disk", nil, false, true, PriorityFinished},
		{"no job, not on disk, none live", nil, false, false, PriorityFinished},
		{"no job, on disk", nil, true, true, PriorityQueued},
		{"no job, on disk, none live", nil, true, false, PriorityWaiting},
		{"finished", finished, false, true, PriorityFinished},
		{"finished, its owner dead", finishedDead, false, false, PriorityFinished},
		{"unfinished, owner live or stale", liveOwner, false, true, PriorityRaised},
		{"unfinished, owner live or stale, none live", liveOwner, false, false, PriorityRaised},
		{"unfinished, owner dead", deadOwner, false, true, PriorityMoved},
		{"unfinished, no owner", noOwner, false, true, PriorityMoved},
		{"unfinished, owner dead, none live", deadOwner, false, false, PriorityWaiting},
		{"has a job and is on disk: the job decides", liveOwner, true, true, PriorityRaised},
	} {
		if got := DecidePriority(tc.job, tc.onDisk, tc.anyLive); got != tc.want {
			t.Errorf("%s: DecidePriority = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPlanPriority(t *testing.T) {
	t.Parallel()
	jobs := map[string]Job{
		"raised": {Owner: 5},
		"moved":  {Owner: 9, OwnerDead: true},
		"done":   {Owner: 5, Finished: true},
	}
	onDisk := map[string]bool{"new-1": true, "new-2": true}
	ids := []string{"done", "moved", "new-1", "new-2", "nowhere", "raised"}
	live := []Load{{Processor: 1, Jobs: 10}, {Processor: 2, Jobs: 0}, {Processor: 3, Jobs: 0}}

	t.Run("owners among those with a priority table", func(t *testing.T) {
		got := PlanPriority(ids, jobs, onDisk, live, map[int64]bool{1: true, 2: true, 5: true})
		want := []PriorityDecision{
			{ID: "done", Status: PriorityFinished},
			{ID: "moved", Status: PriorityMoved, From: 9, Owner: 2},
			{ID: "new-1", Status: PriorityQueued, Owner: 2},
			{ID: "new-2", Status: PriorityQueued, Owner: 2},
			{ID: "nowhere", Status: PriorityFinished},
			{ID: "raised", Status: PriorityRaised, Owner: 5},
		}
		if !slices.Equal(got, want) {
			t.Errorf("PlanPriority =\n%v\nwant\n%v", got, want)
		}
	})
	t.Run("no live processor has a table: all live ones", func(t *testing.T) {
		got := PlanPriority([]string{"new-1", "new-2"}, nil, onDisk, live, nil)
		if got[0].Owner != 2 || got[1].Owner != 3 {
			t.Errorf("owners %d, %d; want 2, 3", got[0].Owner, got[1].Owner)
		}
	})
	t.Run("none live: queue and move wait", func(t *testing.T) {
		got := PlanPriority(ids, jobs, onDisk, nil, nil)
		for _, d := range got {
			switch d.ID {
			case "moved", "new-1", "new-2":
				if d.Status != PriorityWaiting || d.Owner != 0 {
					t.Errorf("%s: %+v, want waiting without owner", d.ID, d)
				}
			}
		}
	})
}

func TestPriorityStatusString(t *testing.T) {
	t.Parallel()
	if s := PriorityMoved.String(); s != "moved" {
		t.Errorf("PriorityMoved = %q", s)
	}
	if s := PriorityStatus(99).String(); s != "PriorityStatus(99)" {
		t.Errorf("unknown status = %q", s)
	}
}
