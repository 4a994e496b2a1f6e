package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"
	"time"
)

const defaultFormat = "%(asctime)s %(levelname)s - %(message)s"

// when is the fixed time of records built by handle.
var when = time.Date(2026, 11, 22, 14, 3, 7, 123456789, time.Local)

// handle passes one record made of level, msg and attrs to a handler built
// from format and returns the output.
func handle(t *testing.T, format string, level slog.Level, msg string, attrs ...slog.Attr) string {
	t.Helper()
	var buf bytes.Buffer
	h, err := NewHandler(&buf, format, slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	r := slog.NewRecord(when, level, msg, 0)
	r.AddAttrs(attrs...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestLevel(t *testing.T) {
	for _, c := range []struct {
		threshold int
		want      slog.Level
	}{
		{-5, slog.LevelDebug},
		{0, slog.LevelDebug},
		{10, slog.LevelDebug},
		{15, slog.LevelInfo},
		{20, slog.LevelInfo},
		{30, slog.LevelWarn},
		{40, slog.LevelError},
		{45, LevelCritical},
		{50, LevelCritical},
		{60, LevelCritical},
	} {
		if got := Level(c.threshold); got != c.want {
			t.Errorf("Level(%d) = %v, want %v", c.threshold, got, c.want)
		}
	}
}

func TestClassicDefaultFormat(t *testing.T) {
	got := handle(t, defaultFormat, slog.LevelInfo, "starting")
	want := "2026-11-22 14:03:07,123 INFO - main - starting\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	got = handle(t, defaultFormat, slog.LevelWarn, "crash pair incomplete, skipping",
		slog.String(LoopKey, "scanner"), slog.String("uuid", "abc"))
	want = "2026-11-22 14:03:07,123 WARNING - scanner - crash pair incomplete, skipping uuid=abc\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestClassicThreadNameAndName(t *testing.T) {
	format := "[%(threadName)s] %(name)s %(levelname)s: %(message)s."
	got := handle(t, format, slog.LevelError, "pass failed",
		slog.String(LoopKey, "cleanup"), slog.Int("n", 3))
	want := "[cleanup] monitor ERROR: pass failed n=3.\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got = handle(t, format, slog.LevelDebug, "tick")
	want = "[main] monitor DEBUG: tick.\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestClassicLevelNames(t *testing.T) {
	for _, c := range []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug - 4, "DEBUG"},
		{slog.LevelDebug, "DEBUG"},
		{slog.LevelInfo, "INFO"},
		{slog.LevelInfo + 2, "INFO"},
		{slog.LevelWarn, "WARNING"},
		{slog.LevelError, "ERROR"},
		{LevelCritical, "CRITICAL"},
		{LevelCritical + 4, "CRITICAL"},
	} {
		got := handle(t, "%(levelname)s", c.level, "m")
		if got != c.want+"\n" {
			t.Errorf("level %v: got %q, want %q", c.level, got, c.want)
		}
	}
}

// stringer is a fmt.Stringer for attribute rendering.
type stringer struct{ s string }

func (s stringer) String() string { return s.s }

// lazy is a slog.LogValuer.
type lazy struct{}

func (lazy) LogValue() slog.Value { return slog.StringValue("resolved") }

func TestClassicAttrs(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := handle(t, "%(message)s", slog.LevelInfo, "m",
		slog.String("plain", "a/b.c"),
		slog.String("space", "a b"),
		slog.String("quote", `say "hi"`),
		slog.String("eq", "a=b"),
		slog.String("tab", "a\tb"),
		slog.String("ctl", "a\x01b"),
		slog.String("empty", ""),
		slog.Int("int", -3),
		slog.Uint64("uint", 7),
		slog.Float64("float", 1.5),
		slog.Bool("bool", true),
		slog.Any("err", errors.New("no such file")),
		slog.Any("nilerr", error(nil)),
		slog.Duration("dur", 90*time.Second),
		slog.Time("at", ts),
		slog.Any("str", stringer{"x"}),
		slog.Any("lazy", lazy{}),
		slog.Group("g", slog.Int("a", 1), slog.Group("h", slog.String("b", "two words"))),
		slog.Group("emptygroup"),
		slog.Group("", slog.String("inlined", "y")),
		slog.Any("", nil),
	)
	want := `main - m plain=a/b.c space="a b" quote="say \"hi\"" eq="a=b" tab="a\tb" ctl="a\x01b" empty=""` +
		` int=-3 uint=7 float=1.5 bool=true err="no such file" nilerr=<nil> dur=1m30s at=2026-01-02T03:04:05Z` +
		` str=x lazy=resolved g.a=1 g.h.b="two words" inlined=y` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestClassicNewlines(t *testing.T) {
	got := handle(t, defaultFormat, slog.LevelInfo, "line one\nline two\r\n",
		slog.String("v", "a\nb"), slog.String("k\nx", "c"))
	want := `2026-11-22 14:03:07,123 INFO - main - line one\nline two\r\n v="a\nb" "k\nx"=c` + "\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if strings.Count(got, "\n") != 1 {
		t.Errorf("record spans more than one line: %q", got)
	}
}

func TestClassicWithAttrsAndGroups(t *testing.T) {
	var buf bytes.Buffer
	h, err := NewHandler(&buf, "%(threadName)s|%(message)s", slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	l := slog.New(h).With(LoopKey, "priority", "a", 1)
	l.Info("first", "b", 2)
	l.WithGroup("g").With("c", 3).Info("second", LoopKey, "not-a-thread", "d", 4)
	l.Info("third", LoopKey, "override")
	slog.New(h).WithGroup("g").With(LoopKey, "nested").Info("fourth")

	want := "priority|first a=1 b=2\n" +
		"priority|second a=1 g.c=3 g.loop=not-a-thread g.d=4\n" +
		"override|third a=1\n" +
		"main|fourth g.loop=nested\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestClassicAsctimeFromLogger(t *testing.T) {
	var buf bytes.Buffer
	h, err := NewHandler(&buf, defaultFormat, slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	slog.New(h).With(LoopKey, "scanner").Log(context.Background(), LevelCritical, "cannot connect to the database")
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} CRITICAL - scanner - cannot connect to the database\n$`)
	if !re.MatchString(buf.String()) {
		t.Errorf("got %q, want match for %s", buf.String(), re)
	}
}

func TestNewHandlerBadFormat(t *testing.T) {
	for _, f := range []string{"", "%(asctime)s %(process)d %(lineno)s"} {
		if _, err := NewHandler(&bytes.Buffer{}, f, nil); err == nil {
			t.Errorf("NewHandler(%q): no error", f)
		}
	}
}

func TestHandlerThreshold(t *testing.T) {
	for _, format := range []string{defaultFormat, FormatJSON} {
		var buf bytes.Buffer
		lv := new(slog.LevelVar)
		lv.Set(Level(30))
		h, err := NewHandler(&buf, format, lv)
		if err != nil {
			t.Fatal(err)
		}
		l := slog.New(h)
		l.Info("dropped")
		l.Warn("kept")
		lv.Set(Level(0))
		l.Debug("kept too")
		got := buf.String()
		if strings.Contains(got, "dropped") || !strings.Contains(got, "kept") || !strings.Contains(got, "kept too") {
			t.Errorf("%s: got %q", format, got)
		}
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	h, err := NewHandler(&buf, FormatJSON, slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	l := slog.New(h)
	l.With(LoopKey, "scanner").Warn("crash pair incomplete,\nskipping", "uuid", "abc", "err", errors.New("boom"))
	l.Log(context.Background(), LevelCritical, "db gone")
	l.Debug("tick", slog.Group("g", "level", 3))

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), buf.String())
	}
	var objs []map[string]any
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["time"])); err != nil {
			t.Errorf("line %q: time: %v", line, err)
		}
		objs = append(objs, m)
	}
	checks := []map[string]any{
		{"level": "WARNING", "msg": "crash pair incomplete,\nskipping", LoopKey: "scanner", "uuid": "abc", "err": "boom"},
		{"level": "CRITICAL", "msg": "db gone"},
		{"level": "DEBUG", "msg": "tick", "g": map[string]any{"level": float64(3)}},
	}
	for i, want := range checks {
		for k, v := range want {
			if got := objs[i][k]; fmt.Sprint(got) != fmt.Sprint(v) {
				t.Errorf("line %d: %s = %v, want %v", i, k, got, v)
			}
		}
	}
	if _, ok := objs[1][LoopKey]; ok {
		t.Errorf("line 1 has %s without one being set", LoopKey)
	}
}

// unsafeWriter is a writer that is not safe for concurrent use: the race
// detector reports overlapping Writes. It records each Write.
type unsafeWriter struct {
	writes []string
}

func (w *unsafeWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestConcurrentWholeLines(t *testing.T) {
	const goroutines, lines = 20, 200
	for _, format := range []string{defaultFormat, FormatJSON} {
		w := new(unsafeWriter)
		h, err := NewHandler(w, format, slog.LevelDebug)
		if err != nil {
			t.Fatal(err)
		}
		base := slog.New(h)
		var wg sync.WaitGroup
		for g := range goroutines {
			// Derived loggers must share the base handler's lock.
			l := base.With(LoopKey, "loop"+strconv.Itoa(g)).WithGroup("grp")
			wg.Go(func() {
				for i := range lines {
					l.Info("working on a line", "i", i, "text", strings.Repeat("x", 100))
				}
			})
		}
		wg.Wait()
		if len(w.writes) != goroutines*lines {
			t.Fatalf("%s: %d writes, want %d", format, len(w.writes), goroutines*lines)
		}
		for _, s := range w.writes {
			if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 || !strings.Contains(s, strings.Repeat("x", 100)) {
				t.Fatalf("%s: not one whole line: %q", format, s)
			}
		}
	}
}

// TestSlogtest runs the standard handler conformance tests against the
// classic handler, parsing its lines back into maps.
func TestSlogtest(t *testing.T) {
	var buf bytes.Buffer
	newHandler := func(*testing.T) slog.Handler {
		buf.Reset()
		h, err := NewHandler(&buf, "%(asctime)s|%(levelname)s|%(threadName)s|%(message)s", slog.LevelDebug)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	result := func(t *testing.T) map[string]any {
		return parseClassic(t, buf.String())
	}
	slogtest.Run(t, newHandler, result)
}

// parseClassic parses a line in the format
// "%(asctime)s|%(levelname)s|%(threadName)s|%(message)s" whose message is a
// single word, into the map slogtest expects.
func parseClassic(t *testing.T, line string) map[string]any {
	t.Helper()
	line = strings.TrimSuffix(line, "\n")
	parts := strings.SplitN(line, "|", 4)
	if len(parts) != 4 {
		t.Fatalf("bad line %q", line)
	}
	m := map[string]any{slog.LevelKey: parts[1]}
	if parts[0] != "" {
		m[slog.TimeKey] = parts[0]
	}
	msg, rest, _ := strings.Cut(parts[3], " ")
	m[slog.MessageKey] = msg
	for rest != "" {
		key, val, ok := strings.Cut(rest, "=")
		if !ok {
			t.Fatalf("bad attrs %q in %q", rest, line)
		}
		if strings.HasPrefix(val, `"`) {
			q, err := strconv.QuotedPrefix(val)
			if err != nil {
				t.Fatalf("bad quoted value in %q: %v", line, err)
			}
			rest = strings.TrimPrefix(val[len(q):], " ")
			val, _ = strconv.Unquote(q)
		} else {
			val, rest, _ = strings.Cut(val, " ")
		}
		dst := m
		names := strings.Split(key, ".")
		for _, g := range names[:len(names)-1] {
			sub, ok := dst[g].(map[string]any)
			if !ok {
				sub = map[string]any{}
				dst[g] = sub
			}
			dst = sub
		}
		dst[names[len(names)-1]] = val
	}
	return m
}
