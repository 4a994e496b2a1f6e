package crashstore

import (
	"slices"
	"testing"
	"time"
)

// TestWalkPassPruneDirs is TestPruneDateDirsDaily done the scanner's way:
// the walk names the past directories, the links go, PruneDirs removes what
// emptied without listing the tree again.
func TestWalkPassPruneDirs(t *testing.T) {
	t.Parallel()
	now := time.Date(2009, 9, 28, 12, 5, 30, 0, time.UTC)
	b := setup(t, Options{Now: func() time.Time { return now }})
	at := func(d, h, m int) time.Time { return time.Date(2009, 9, d, h, m, 0, 0, time.UTC) }
	wedged := "dddddddd-0000-4000-8000-000002090928"
	made := b.put(t, []fixture{
		{id: "aaaaaaaa-0000-4000-8000-000002090927", webhead: "web1", at: at(27, 23, 59)},
		{id: "bbbbbbbb-0000-4000-8000-000002090928", webhead: "web1", at: at(28, 11, 59)},
		{id: "cccccccc-0000-4000-8000-000002090928", webhead: "web1", at: at(28, 12, 3)},
		{id: wedged, webhead: "web1", at: at(28, 12, 1)},
		{id: "eeeeeeee-0000-4000-8000-000002090928", webhead: "web1", at: at(28, 12, 5)}, // current slot
		{id: "ffffffff-0000-4000-8000-000002090928", webhead: "web1", at: at(28, 12, 7)}, // a clock ahead
	})
	var past []string
	rm := b.s.NewLinkRemover()
	defer rm.Close()
	err := b.s.WalkPass(t.Context(), func(e Entry) error {
		if e.ID == wedged {
			return nil
		}
		return rm.Remove(e)
	}, nil, func(d string) { past = append(past, d) })
	if err != nil {
		t.Fatal(err)
	}
	r := b.root
	wantPast := []string{
		r + "/20090927/date/23/59/web1_0", r + "/20090927/date/23/59", r + "/20090927/date/23",
		r + "/20090928/date/11/59/web1_0", r + "/20090928/date/11/59", r + "/20090928/date/11",
		r + "/20090928/date/12/01/web1_0", r + "/20090928/date/12/01",
		r + "/20090928/date/12/03/web1_0", r + "/20090928/date/12/03",
	}
	if !slices.Equal(past, wantPast) {
		t.Errorf("past = %q\nwant %q", past, wantPast)
	}
	for id, e := range made {
		if id != wedged && (exists(t, e.DateLink) || exists(t, e.NameLink)) {
			t.Errorf("links of %s not removed", id)
		}
	}
	// The tree outside past is never touched, whatever the caller passes.
	n, err := b.s.PruneDirs(t.Context(), append(past, r+"/20090928/date/12/05/web1_0", r+"/20090928/date", r+"/20090928/name/ee"))
	if err != nil || n != 8 {
		t.Errorf("PruneDirs = %d, %v; want 8", n, err)
	}
	checkTree(t, []string{
		r + "/20090927/date/23/59/web1_0", r + "/20090927/date/23/59", r + "/20090927/date/23",
		r + "/20090928/date/11/59/web1_0", r + "/20090928/date/11/59", r + "/20090928/date/11",
		r + "/20090928/date/12/03/web1_0", r + "/20090928/date/12/03",
	}, []string{
		r + "/20090927", r + "/20090927/date", r + "/20090927/name", r + "/20090928/name/ee",
		r + "/20090928/date/12", r + "/20090928/date/12/01/web1_0", r + "/20090928/date/12/05/web1_0",
		r + "/20090928/date/12/07/web1_0",
	})
	if len(b.problems) != 0 {
		t.Errorf("problems: %v", b.problems)
	}
}

func TestSlotDirs(t *testing.T) {
	t.Parallel()
	at := time.Date(2009, 9, 28, 12, 7, 30, 0, time.UTC)
	daily := setup(t, Options{})
	r := daily.root
	if got, want := daily.s.SlotDirs(at), []string{r, r + "/20090928", r + "/20090928/date", r + "/20090928/date/12", r + "/20090928/date/12/07"}; !slices.Equal(got, want) {
		t.Errorf("daily SlotDirs = %q, want %q", got, want)
	}
	flat := setup(t, Options{Layout: LayoutFlat})
	r = flat.root
	d := r + "/date"
	if got, want := flat.s.SlotDirs(at), []string{r, d, d + "/2009", d + "/2009/09", d + "/2009/09/28", d + "/2009/09/28/12", d + "/2009/09/28/12/05"}; !slices.Equal(got, want) {
		t.Errorf("flat SlotDirs = %q, want %q", got, want)
	}
	// The collector puts a link of that moment right below the last one.
	e, err := daily.s.CreateLinks("aaaaaaaa-0000-4000-8000-000002090928", "web1", at)
	if err != nil {
		t.Fatal(err)
	}
	if dirs := daily.s.SlotDirs(at); e.DateLink != dirs[len(dirs)-1]+"/web1_0/"+e.ID {
		t.Errorf("link %s is not in the slot %s", e.DateLink, dirs[len(dirs)-1])
	}
}

func TestStat(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	e, err := b.s.CreateLinks("aaaaaaaa-0000-4000-8000-000002090928", "web1", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := b.s.Stat(e); err != nil || st.Written {
		t.Errorf("Stat(no files) = %+v, %v; want not written", st, err)
	}
	mustWrite(t, e.DumpPath)
	mustWrite(t, e.JSONPath)
	old, later := testNow.Add(-time.Hour), testNow.Add(-time.Minute)
	setMtime(t, old, e.JSONPath)
	setMtime(t, later, e.DumpPath)
	if st, err := b.s.Stat(e); err != nil || !st.Written || !st.Latest.Equal(later) {
		t.Errorf("Stat = %+v, %v; want written at %v", st, err, later)
	}
}
