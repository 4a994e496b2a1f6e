package faultsuite

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is one reading of the soaked monitor.
type sample struct {
	at         time.Duration // since the soak began
	pid        int
	rssKiB     float64 // VmRSS
	goroutines float64 // go_goroutines
	fds        float64 // process_open_fds
}

// sampler reads the soaked monitor's memory, goroutines and open files at
// a fixed interval.
type sampler struct {
	mu      sync.Mutex
	samples []sample
	misses  int // readings that failed (the monitor was down, say)
}

// run samples until ctx ends; target returns the soaked monitor's pid and
// HTTP address.
func (s *sampler) run(ctx context.Context, every time.Duration, target func() (int, string)) {
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		pid, addr := target()
		smp, err := read(ctx, pid, addr)
		s.mu.Lock()
		if err != nil {
			s.misses++
		} else {
			smp.at = time.Since(start)
			s.samples = append(s.samples, smp)
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// read takes one sample of the monitor pid serving HTTP at addr.
func read(ctx context.Context, pid int, addr string) (sample, error) {
	if pid == 0 {
		return sample{}, fmt.Errorf("the monitor is down")
	}
	rss, err := statusKiB(pid, "VmRSS")
	if err != nil {
		return sample{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return sample{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return sample{}, err
	}
	gauge := func(name string) (float64, error) {
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) == 0 || f.GetMetric()[0].Gauge == nil {
			return 0, fmt.Errorf("no gauge %s in /metrics", name)
		}
		return f.GetMetric()[0].GetGauge().GetValue(), nil
	}
	g, err := gauge("go_goroutines")
	if err != nil {
		return sample{}, err
	}
	fds, err := gauge("process_open_fds")
	if err != nil {
		return sample{}, err
	}
	return sample{pid: pid, rssKiB: rss, goroutines: g, fds: fds}, nil
}

// statusKiB reads a "Name:  123 kB" line of /proc/<pid>/status.
func statusKiB(pid int, name string) (float64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", name, pid)
}

// The soak's verdict: a figure grows without bound when its average over
// the last minute is more than growthLimit times its maximum over the first
// minute. The first minute includes the start-up and the first faults, so a
// figure that merely settles does not trip it.
const (
	growthLimit = 2.0
	judgeWindow = time.Minute
)

// trend is one figure over the soak.
type trend struct {
	name                           string
	unit                           string
	first, last, max, min          float64
	firstMinuteMax, lastMinuteMean float64
	slopePerMin                    float64 // least squares
	grows                          bool
}

// trends summarises the samples of the last monitor process sampled (a
// monitor started again by the supervisor starts a new series); judged
// reports whether they span enough time to be judged.
func (s *sampler) trends() (ts []trend, n int, span time.Duration, judged bool) {
	s.mu.Lock()
	all := s.samples
	s.mu.Unlock()
	if len(all) == 0 {
		return nil, 0, 0, false
	}
	// The last process's series.
	from := len(all) - 1
	for from > 0 && all[from-1].pid == all[len(all)-1].pid {
		from--
	}
	series := all[from:]
	span = series[len(series)-1].at - series[0].at
	judged = span >= 2*judgeWindow
	for _, f := range []struct {
		name, unit string
		get        func(sample) float64
	}{
		{"memory (VmRSS)", "MiB", func(x sample) float64 { return x.rssKiB / 1024 }},
		{"goroutines", "", func(x sample) float64 { return x.goroutines }},
		{"open files", "", func(x sample) float64 { return x.fds }},
	} {
		tr := trend{name: f.name, unit: f.unit, first: f.get(series[0]), last: f.get(series[len(series)-1])}
		tr.min, tr.max = tr.first, tr.first
		var sx, sy, sxx, sxy, lastSum float64
		var lastN int
		t0 := series[0].at
		for _, x := range series {
			v := f.get(x)
			tr.max, tr.min = max(tr.max, v), min(tr.min, v)
			m := (x.at - t0).Minutes()
			sx, sy, sxx, sxy = sx+m, sy+v, sxx+m*m, sxy+m*v
			if x.at-t0 < judgeWindow {
				tr.firstMinuteMax = max(tr.firstMinuteMax, v)
			}
			if series[len(series)-1].at-x.at < judgeWindow {
				lastSum += v
				lastN++
			}
		}
		k := float64(len(series))
		if d := k*sxx - sx*sx; d > 0 {
			tr.slopePerMin = (k*sxy - sx*sy) / d
		}
		tr.lastMinuteMean = lastSum / float64(lastN)
		tr.grows = judged && tr.lastMinuteMean > growthLimit*tr.firstMinuteMax
		ts = append(ts, tr)
	}
	return ts, len(series), span, judged
}

// report writes the soak's figures.
func (s *sampler) report(w io.Writer) {
	ts, n, span, judged := s.trends()
	s.mu.Lock()
	misses, pids := s.misses, map[int]bool{}
	for _, x := range s.samples {
		pids[x.pid] = true
	}
	s.mu.Unlock()
	fmt.Fprintf(w, "soak: %d samples over %s (%d readings missed)", n, span.Round(time.Second), misses)
	if len(pids) > 1 {
		fmt.Fprintf(w, "; the monitor was started %d times, figures of the last process only", len(pids))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  %-15s %9s %9s %9s %9s %13s %9s\n", "figure", "first", "last", "min", "max", "1st-min max", "slope/min")
	for _, tr := range ts {
		unit := tr.unit
		if unit != "" {
			unit = " " + unit
		}
		verdict := "flat"
		switch {
		case !judged:
			verdict = "not judged (under two minutes)"
		case tr.grows:
			verdict = fmt.Sprintf("GROWS: last minute %.1f > %.0f× first minute's max", tr.lastMinuteMean, growthLimit)
		}
		fmt.Fprintf(w, "  %-15s %9.1f %9.1f %9.1f %9.1f %13.1f %+9.2f%s  %s\n",
			tr.name, tr.first, tr.last, tr.min, tr.max, tr.firstMinuteMax, tr.slopePerMin, unit, verdict)
	}
}
