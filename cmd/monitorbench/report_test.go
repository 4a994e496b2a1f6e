package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFormatting(t *testing.T) {
	t.Parallel()
	ints := map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 200000: "200,000", 1234567: "1,234,567", -4500: "-4,500"}
	for n, want := range ints {
		if got := formatInt(n); got != want {
			t.Errorf("formatInt(%d) = %q, want %q", n, got, want)
		}
	}
	if got := formatRate(9171.6); got != "9,172 pairs/s" {
		t.Errorf("formatRate = %q", got)
	}
	durations := map[time.Duration]string{
		420 * time.Microsecond:   "420 µs",
		2840 * time.Microsecond:  "2.84 ms",
		25900 * time.Microsecond: "25.9 ms",
		310 * time.Millisecond:   "310 ms",
		1250 * time.Millisecond:  "1.25 s",
		21800 * time.Millisecond: "21.8 s",
	}
	for d, want := range durations {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestTargets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		t    target
		v    float64
		want Verdict
	}{
		{atLeast(10, ""), 10, Pass},
		{atLeast(10, ""), 10.5, Pass},
		{atLeast(10, ""), 9.9, Miss},
		{atMost(100, ""), 100, Pass},
		{atMost(100, ""), 3, Pass},
		{atMost(100, ""), 100.1, Miss},
	} {
		if got := tc.t.judge(tc.v); got != tc.want {
			t.Errorf("%+v judge(%v) = %s, want %s", tc.t, tc.v, got, tc.want)
		}
	}
}

// TestSummarize: nearest-rank percentiles of the latencies.
func TestSummarize(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // out of order on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := summarize(ds)
	if l.n != 100 || l.p50 != 50*time.Millisecond || l.p99 != 99*time.Millisecond || l.max != 100*time.Millisecond {
		t.Errorf("summarize = %+v", l)
	}
	if l := summarize(ds[:1]); l.p50 != 100*time.Millisecond || l.p99 != 100*time.Millisecond {
		t.Errorf("one latency: %+v", l)
	}
	if l := summarize(nil); l != (latency{}) {
		t.Errorf("no latency: %+v", l)
	}
	f := summarize(ds).figure(figArrival, "arrival", atMost(1000, "p99 ≤ 1 s"))
	if f.Value != 99 || f.Unit != "ms" || f.Shown != "p50 50.0 ms, p99 99.0 ms" || f.Verdict != Pass || f.Details["max_ms"] != 100 {
		t.Errorf("latency figure = %+v", f)
	}
}

func measured() map[string]Figure {
	return map[string]Figure{
		figDeadMove:   Figure{Name: figDeadMove, Label: "dead move", Value: 3.5, Unit: "s", Shown: "3.50 s"}.judged(atMost(2, "≤ 2 s")),
		figCopy:       rateFigure(figCopy, "copy", 200_000, 2*time.Second),              // 100,000 pairs/s
		figWalkUnlink: rateFigure(figWalkUnlink, "walk+unlink", 200_000, 4*time.Second), // 50,000 pairs/s: the ceiling
		figDrain:      rateFigure(figDrain, "drain", 200_000, 5*time.Second),            // 40,000 pairs/s
		figClassic:    rateFigure(figClassic, "classic", 20_000, 10*time.Second),        // 2,000 pairs/s
	}
}

// TestAssemble: the table's order, the drain's ratios and its verdict.
func TestAssemble(t *testing.T) {
	t.Parallel()
	in := measured()
	figs := assemble(in)
	var names []string
	for _, f := range figs {
		names = append(names, f.Name)
	}
	want := []string{figDrain, figDrainClassic, figDrainCeiling, figCeiling, figWalkUnlink, figCopy, figClassic, figDeadMove}
	if !slices.Equal(names, want) {
		t.Fatalf("order = %v, want %v", names, want)
	}
	if len(in) != 5 {
		t.Errorf("assemble modified its input: %d figures", len(in))
	}
	byName := map[string]Figure{}
	for _, f := range figs {
		byName[f.Name] = f
	}
	if f := byName[figDrainClassic]; f.Value != 20 || f.Shown != "20.0×" || f.Verdict != Pass {
		t.Errorf("drain vs classic = %+v", f)
	}
	if f := byName[figCeiling]; f.Value != 50_000 || f.Shown != "50,000 pairs/s" || !strings.Contains(f.Note, "walk + unlink") {
		t.Errorf("ceiling = %+v", f)
	}
	if f := byName[figDrainCeiling]; f.Value != 80 || f.Shown != "80.0%" || f.Verdict != Pass {
		t.Errorf("drain vs ceiling = %+v", f)
	}
	if f := byName[figDrain]; f.Verdict != Pass || f.Shown != "40,000 pairs/s" || !strings.Contains(f.Target, "20×") {
		t.Errorf("drain = %+v", f)
	}
	if f := byName[figClassic]; f.Verdict != Reference || f.Target != "" {
		t.Errorf("classic = %+v", f)
	}

	// Half the drain's speed misses the classic ratio, and so the drain.
	in[figDrain] = rateFigure(figDrain, "drain", 200_000, 10*time.Second)
	byName = map[string]Figure{}
	for _, f := range assemble(in) {
		byName[f.Name] = f
	}
	if byName[figDrainClassic].Verdict != Miss || byName[figDrainCeiling].Verdict != Miss || byName[figDrain].Verdict != Miss {
		t.Errorf("slow drain: %+v", byName)
	}

	// A drain without its yardsticks has no verdict.
	alone := assemble(map[string]Figure{figDrain: rateFigure(figDrain, "drain", 10, time.Second)})
	if len(alone) != 1 || alone[0].Verdict != Reference || !strings.Contains(alone[0].Note, "no ratio") {
		t.Errorf("drain alone = %+v", alone)
	}
}

func TestReportOutput(t *testing.T) {
	t.Parallel()
	r := &Report{
		Header: Header{Mode: "full", Started: time.Date(2026, 11, 22, 5, 51, 0, 0, time.UTC), Seconds: 500,
			CPU: "AMD EPYC", CPUs: 2, MemoryMiB: 24105, Go: "go1.26.8", PostgreSQL: "15.18", Monitor: "dev",
			TreeDir: "/var/tmp/x", Filesystem: "ext4", LoadStart: [3]float64{5.01, 5.09, 5.48},
			Durability: Durability{Fsync: "on", SynchronousCommit: "on", FullPageWrites: "on"}},
		Figures: assemble(measured()),
		Scaling: []ScaleRow{
			rateRow("drain", 10_000, 500*time.Millisecond, "small"),
			{Scenario: "priority p99", Pairs: 1_000_000, P99ms: 4.5},
		},
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"monitorbench full run, 2026-11-22 05:51 UTC, 500 s",
		"machine: AMD EPYC, 2 CPUs, 23.5 GiB memory; go1.26.8; PostgreSQL 15.18; monitor dev",
		"trees: ext4 (/var/tmp/x)\n",
		"database: durable (fsync on, synchronous_commit on, full_page_writes on)\n",
		"load average 5.01 5.09 5.48 at start",
		"scaling (cost per pair should stay flat)", "20,000", "50.0", "4.50 ms",
		"40,000 pairs/s", "2,000 pairs/s", "≥ 10,000" /* absent: no cleanup */, "≤ 2 s",
	} {
		if want == "≥ 10,000" {
			if strings.Contains(out, want) {
				t.Errorf("table shows a figure that was not measured:\n%s", out)
			}
			continue
		}
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Columns line up: every row starts its "measured" cell at the same rune.
	table := out[strings.Index(out, "figure"):strings.Index(out, "\nscaling")]
	lines := strings.Split(strings.TrimSpace(table), "\n")
	col := strings.Index(lines[0], "measured")
	for _, l := range lines[2:] {
		runes := []rune(l)
		if len(runes) <= col || runes[col-1] != ' ' || runes[col] == ' ' {
			t.Errorf("misaligned row %q (measured column at %d)", l, col)
		}
	}
	if misses := r.Misses(); !slices.Equal(misses, []string{figDeadMove}) {
		t.Errorf("misses = %v", misses)
	}

	path := filepath.Join(t.TempDir(), "out", "bench.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Figures) != len(r.Figures) || back.Header.CPU != "AMD EPYC" || back.Figures[0].Unit != "pairs/s" ||
		back.Figures[0].Details["pairs"] != 200_000 {
		t.Errorf("JSON round trip: %+v", back)
	}
	if !strings.Contains(string(data), `"verdict": "miss"`) {
		t.Errorf("JSON lacks the verdicts:\n%s", data)
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "monitor")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-smoke", "-monitor", bin, "-only", "drain,cleanup", "-set", "logFileErrorLoggingLevel=20"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.mode != "smoke" || !reflect.DeepEqual(o.sizes, smokeSizes()) || !o.runs("drain") || o.runs("classic") || o.settings["logFileErrorLoggingLevel"] != "20" {
		t.Errorf("smoke options = %+v", o)
	}
	o, err = parseFlags([]string{"-monitor", bin}, io.Discard)
	if err != nil || o.sizes.drain != 50_000 || !slices.Contains(o.sizes.scaleCold, oneMillion) || o.dir != "/var/tmp" || o.tmpfs != "" || o.only != nil {
		t.Errorf("default options = %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"-no-1m", "-tmpfs", "-n", "500", "-monitor", bin}, io.Discard)
	if err != nil || o.sizes.drain != 500 || slices.Contains(o.sizes.scaleCold, oneMillion) || o.sizes.priorityLoad != 100_000 || o.tmpfs != "/dev/shm" {
		t.Errorf("-no-1m -tmpfs -n 500: %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"-scale", "5000, 20000", "-scale-cold", "none", "-monitor", bin}, io.Discard)
	if err != nil || !reflect.DeepEqual(o.sizes.scale, []int{5000, 20000}) || o.sizes.scaleCold != nil {
		t.Errorf("-scale 5000,20000 -scale-cold none: %+v, %v", o, err)
	}
	for _, bad := range [][]string{
		{"-large"}, {"-only", "drain,bogus"}, {"-n", "-1"}, {"-scale", "10k"}, {"-scale-cold", "0"}, {"extra"}, {"-set", "novalue"},
		{"-monitor", filepath.Join(t.TempDir(), "missing")},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%v): no error", bad)
		}
	}
}

// TestDurabilityAndFilesystemWarnings: a run on tmpfs or against a server
// that does not wait for the disk says so in its header.
func TestDurabilityAndFilesystemWarnings(t *testing.T) {
	t.Parallel()
	if d := (Durability{Fsync: "on", SynchronousCommit: "local", FullPageWrites: "on"}); !d.Durable() {
		t.Errorf("%+v: not durable", d)
	}
	for _, d := range []Durability{{Fsync: "off", SynchronousCommit: "on", FullPageWrites: "on"},
		{Fsync: "on", SynchronousCommit: "off", FullPageWrites: "on"}, {Fsync: "on", SynchronousCommit: "on", FullPageWrites: "off"}, {}} {
		if d.Durable() || !strings.HasPrefix(d.String(), "NOT DURABLE") {
			t.Errorf("%+v: durable, or said so: %s", d, d)
		}
	}
	r := &Report{Header: Header{Mode: "smoke", Filesystem: "tmpfs", TreeDir: "/dev/shm/x",
		Durability: Durability{Fsync: "off", SynchronousCommit: "off", FullPageWrites: "off"}}}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"trees: tmpfs (/dev/shm/x) — IN MEMORY, NOT ON DISK", "database: NOT DURABLE (fsync off"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("header lacks %q:\n%s", want, b.String())
		}
	}
}

// TestScaleRows: the cost per pair is the inverse of the rate, and what was
// not measured is a dash.
func TestScaleRows(t *testing.T) {
	t.Parallel()
	r := rateRow("drain", 1_000_000, 50*time.Second, "")
	if r.Rate != 20_000 || r.MicrosPerPair != 50 {
		t.Errorf("rateRow = %+v", r)
	}
	rows := scaleRows([]ScaleRow{{Scenario: "priority p99", Pairs: 100, P99ms: 3}, r})
	if got := strings.Join(rows[1], "|"); got != "drain|1,000,000|50.0 s|20,000|50.0|-|-|" {
		t.Errorf("drain row = %q", got)
	}
	if got := strings.Join(rows[2], "|"); got != "priority p99|100|-|-|-|3.00 ms|-|" {
		t.Errorf("priority row = %q", got)
	}
}
