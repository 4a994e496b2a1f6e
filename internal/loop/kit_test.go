package loop

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := Backoff{Min: time.Second, Max: 30 * time.Second}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for n, w := range want {
		if got := b.Delay(n); got != w {
			t.Errorf("Delay(%d) = %v, want %v", n, got, w)
		}
	}
	if got := b.Delay(1000); got != 30*time.Second {
		t.Errorf("Delay(1000) = %v, want the cap", got)
	}
	if got := (Backoff{}).Delay(3); got != 0 {
		t.Errorf("zero Backoff waits %v", got)
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Sleep(t.Context(), time.Minute) || time.Since(start) != time.Minute {
			t.Errorf("Sleep did not wait the minute: %v", time.Since(start))
		}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		if Sleep(ctx, time.Hour) {
			t.Error("Sleep ran its course after ctx was cancelled")
		}
	})
}

func TestEpisode(t *testing.T) {
	t.Parallel()
	var e Episode
	if e.End() || e.Active() {
		t.Error("the zero Episode has begun")
	}
	if !e.Begin() || e.Begin() || !e.Active() {
		t.Error("Begin: want true once, then false while it lasts")
	}
	if !e.End() || e.End() || e.Active() {
		t.Error("End: want true once, then false")
	}
	if !e.Begin() {
		t.Error("a new stretch does not begin")
	}
}

func TestMemory(t *testing.T) {
	t.Parallel()
	var m Memory[int]
	if m.Get("a") != nil || m.Len() != 0 {
		t.Fatal("the zero Memory remembers something")
	}
	v, added := m.Remember("a")
	*v = 1
	if !added {
		t.Error("first Remember: not added")
	}
	if v2, added := m.Remember("a"); added || *v2 != 1 {
		t.Error("second Remember: a new value")
	}
	m.Remember("b")
	m.Replace("c", new(int))
	m.Seen("a")
	m.Seen("c")
	m.EndPass()
	if got := slices.Sorted(maps.Keys(maps.Collect(m.All()))); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("after a pass that met a and c: %v", got)
	}
	m.EndPass() // met nothing
	if m.Len() != 0 {
		t.Errorf("after a pass that met nothing: %d remembered", m.Len())
	}
	m.Remember("d")
	m.Forget("d")
	if m.Get("d") != nil {
		t.Error("Forget did not forget")
	}
}

func TestPassAdapter(t *testing.T) {
	t.Parallel()
	calls := 0
	pass := Pass(func(context.Context) (int, error) { calls++; return 7, nil })
	if err := pass(t.Context()); err != nil || calls != 1 {
		t.Errorf("Pass: %v, %d calls", err, calls)
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&buf, nil))
		p := NewProgress(logger, "queuing a backlog")
		p.Update(t.Context(), 100)
		time.Sleep(5 * time.Second)
		p.Update(t.Context(), 500)
		if buf.Len() != 0 {
			t.Fatalf("a progress line before 10 s: %s", buf.String())
		}
		time.Sleep(5 * time.Second)
		p.Update(t.Context(), 1000)
		line := buf.String()
		if !strings.Contains(line, "queuing a backlog") || !strings.Contains(line, "done=1000") || !strings.Contains(line, "per_second=100") {
			t.Errorf("progress line %q", line)
		}
		buf.Reset()
		time.Sleep(9 * time.Second)
		p.Update(t.Context(), 1500)
		if buf.Len() != 0 {
			t.Errorf("a second line within 10 s of the first: %s", buf.String())
		}
	})
}
