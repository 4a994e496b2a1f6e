package main

import (
	"encoding/xml"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata")

func testChart() Chart {
	return Chart{
		Title:    "monitor: backlog drain & cleanup",
		Subtitle: "AMD EPYC, 2 CPUs; trees on ext4; durable <PostgreSQL>",
		Panels: []Panel{
			{Title: "Backlog of 50,000 pairs: jobs queued", YLabel: "jobs queued", Series: []Series{
				{Name: "monitor run", Points: []Point{{0, 0}, {0.4, 0}, {1, 20_000}, {2.5, 50_000}}},
				{Name: "classic loop", Points: []Point{{0, 0}, {1, 400}, {20, 9_000}}},
			}},
			{Title: "Cleanup of 100,000 finished jobs", YLabel: "rows removed", Series: []Series{
				{Name: "monitor run", Points: []Point{{0, 0}, {3, 60_000}, {4.2, 100_000}}},
			}},
		},
	}
}

// TestChartSVG: the chart is well-formed XML, escapes its text, has its
// axes' labels and legend, and matches the golden file.
func TestChartSVG(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	if err := testChart().WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	dec := xml.NewDecoder(strings.NewReader(out))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, out)
		}
	}
	for _, want := range []string{
		`<svg xmlns="http://www.w3.org/2000/svg" width="960"`,
		"backlog drain &amp; cleanup", "durable &lt;PostgreSQL&gt;",
		"seconds after the exec", "jobs queued", "rows removed", ">monitor run<", ">classic loop<",
		">50k<", ">20<", "<polyline",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	golden := filepath.Join("testdata", "chart.svg")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run TestChartSVG -update writes it)", err)
	}
	if out != string(want) {
		t.Errorf("SVG differs from %s (go test -run TestChartSVG -update rewrites it after a deliberate change)", golden)
	}
}

func TestChartScales(t *testing.T) {
	t.Parallel()
	for span, want := range map[float64]float64{0: 1, 4.2: 1, 9: 2, 23: 5, 50_000: 10_000, 1_000_000: 200_000, 0.3: 0.1} {
		if got := niceStep(span); got < want*0.999 || got > want*1.001 {
			t.Errorf("niceStep(%v) = %v, want %v", span, got, want)
		}
	}
	if got := axisEnd(50_001, 10_000); got != 60_000 {
		t.Errorf("axisEnd = %v", got)
	}
	if got := axisEnd(0, 1); got != 1 {
		t.Errorf("axisEnd(0) = %v", got)
	}
	for v, want := range map[float64]string{0: "0", 0.5: "0.5", 20: "20", 1500: "1.5k", 100_000: "100k", 1_000_000: "1M"} {
		if got := axisNumber(v); got != want {
			t.Errorf("axisNumber(%v) = %q, want %q", v, got, want)
		}
	}
	pts := make([]Point, 1000)
	for i := range pts {
		pts[i] = Point{T: float64(i)}
	}
	th := thin(pts, 10)
	if len(th) != 10 || th[0].T != 0 || th[9].T != 999 {
		t.Errorf("thin = %v", th)
	}
	if got := thin(pts[:5], 10); len(got) != 5 {
		t.Errorf("thin of few = %v", got)
	}
}

// TestWriteChart writes the file through a temporary one, making its
// directory, and the empty chart is still a valid document.
func TestWriteChart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "docs", "bench.svg")
	if err := writeChart(path, Chart{Title: "empty"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || !strings.HasSuffix(string(data), "</svg>\n") {
		t.Errorf("chart file = %q, %v", data, err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
}
