package reporter

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/apmon"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// fakeProc writes a /proc tree of files under a temporary directory.
func fakeProc(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// values returns params by name, failing on a name given twice or a value
// that is not a double (the libraries send all of these as doubles).
func values(t *testing.T, params []apmon.Param) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, p := range params {
		if _, dup := m[p.Name]; dup {
			t.Errorf("parameter %s twice", p.Name)
		}
		if p.Kind != apmon.Double {
			t.Errorf("parameter %s has type %d, want a double", p.Name, p.Kind)
		}
		m[p.Name] = p.Num
	}
	return m
}

func checkValues(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s missing", name)
		case math.Abs(g-w) > 1e-9*max(1, math.Abs(w)):
			t.Errorf("%s = %v, want %v", name, g, w)
		}
	}
}

func TestSystemFigures(t *testing.T) {
	t.Parallel()
	root := fakeProc(t, map[string]string{
		"stat":    "cpu  100 10 50 800 20 5 5 5 5 0\ncpu0 50 5 25 400 10 2 3 2 3 0\ncpu1 50 5 25 400 10 3 2 3 2 0\nintr 1\n",
		"vmstat":  "pgpgin 1000\npgpgout 2000\npswpin 10\npswpout 20\nnr_free_pages 5\n",
		"loadavg": "0.50 0.25 0.10 2/300 4242\n",
		"meminfo": "MemTotal:       8192000 kB\nMemFree:        1024000 kB\nBuffers:         512000 kB\nCached:         2048000 kB\nSwapTotal:      2048000 kB\nSwapFree:       1536000 kB\n",
		"uptime":  "172800.50 300000.00\n",
		// Processes: the command may hold spaces and parentheses.
		"1/stat":    "1 (init) S 0 1 1 0",
		"42/stat":   "42 (a (weird) name) R 1 42 42 0",
		"43/stat":   "43 (zombie) Z 1 43 43 0",
		"44/stat":   "44 (disk) D 1 44 44 0",
		"45/stat":   "45 (idle) I 1 45 45 0", // counted, in no state of the five
		"self/stat": "7 (monitor) S 1 7 7 0 -1 4194304 100 0 0 0 250 150 0 0 20 0 8 0 1000000 1000000 500",
	})
	p := &proc{root: root}
	at := time.Unix(1767225600, 0)
	first := values(t, p.system(at))
	if _, ok := first["cpu_usage"]; ok {
		t.Errorf("the first reading has CPU shares: %v", first)
	}
	checkValues(t, first, map[string]float64{
		"load1": 0.5, "load5": 0.25, "load15": 0.1,
		"processes": 5, "processes_R": 1, "processes_S": 1, "processes_Z": 1, "processes_D": 1, "processes_T": 0,
		// MB: used = total - free - buffers - cached, as the libraries count it.
		"mem_used": (8192000 - 1024000 - 512000 - 2048000) / 1024.0, "mem_free": 1000, "total_mem": 8000,
		"mem_usage": 100 * 4608000 / 8192000.0,
		"swap_used": 500, "swap_free": 1500, "swap_usage": 25, "total_swap": 2000,
		"uptime": 172800.5 / 86400, "no_CPUs": 2,
	})

	// Ten seconds later: 100 ticks more, shared out; paging rates.
	os.WriteFile(filepath.Join(root, "stat"), []byte("cpu  130 10 60 850 25 10 5 5 5 0\n"), 0o644)
	os.WriteFile(filepath.Join(root, "vmstat"), []byte("pgpgin 1500\npgpgout 2000\npswpin 30\npswpout 20\n"), 0o644)
	second := values(t, p.system(at.Add(10*time.Second)))
	checkValues(t, second, map[string]float64{
		"cpu_usr": 30, "cpu_nice": 0, "cpu_sys": 10, "cpu_idle": 50, "cpu_iowait": 5, "cpu_irq": 5,
		"cpu_softirq": 0, "cpu_steal": 0, "cpu_guest": 0, "cpu_usage": 50,
		"pages_in": 50, "pages_out": 0, "swap_in": 2, "swap_out": 0,
	})
}

func TestJobFigures(t *testing.T) {
	t.Parallel()
	root := fakeProc(t, map[string]string{
		"meminfo": "MemTotal: 1000000 kB\n",
		"uptime":  "20000.00 1.00\n",
		// utime 250 and stime 150 ticks (4 s of CPU); started 1000000 ticks
		// (10000 s) after boot, so it has run 10000 s.
		"self/stat":   "7 (mon itor) S 1 7 7 0 -1 4194304 100 0 0 0 250 150 0 0 20 0 8 0 1000000 1000000 500",
		"self/status": "Name:\tmonitor\nVmSize:\t  120000 kB\nVmRSS:\t   30000 kB\n",
		"self/fd/0":   "", "self/fd/1": "", "self/fd/2": "", "self/fd/3": "",
	})
	p := &proc{root: root}
	got := values(t, p.job(t.TempDir()))
	checkValues(t, got, map[string]float64{
		"run_time": 10000, "cpu_time": 4, "cpu_usage": 0.04,
		"rss": 30000, "virtualmem": 120000, "mem_usage": 3,
		"open_files": 3, // four entries, one of them the reader's own
	})
	for _, name := range []string{"disk_total", "disk_used", "disk_free", "disk_usage"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	if got["disk_used"]+got["disk_free"] > got["disk_total"]+1e-6 {
		t.Errorf("disk used %v + free %v > total %v", got["disk_used"], got["disk_free"], got["disk_total"])
	}
}

// TestRealProc: on the machine the tests run on, every figure is there.
func TestRealProc(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	p := &proc{root: "/proc"}
	p.system(time.Now())
	var sys map[string]float64
	testkit.Eventually(t, "the CPU ticks to advance", func() bool {
		sys = values(t, p.system(time.Now()))
		_, ok := sys["cpu_usage"]
		return ok
	})
	for _, name := range []string{"cpu_usr", "cpu_sys", "cpu_nice", "cpu_idle", "cpu_usage", "load1", "load5", "load15",
		"mem_used", "mem_free", "mem_usage", "swap_used", "swap_free", "processes", "uptime", "total_mem", "no_CPUs"} {
		if _, ok := sys[name]; !ok {
			t.Errorf("system figure %s missing", name)
		}
	}
	job := values(t, p.job("/"))
	for _, name := range []string{"run_time", "cpu_time", "cpu_usage", "rss", "virtualmem", "mem_usage", "open_files", "disk_total", "disk_used", "disk_free", "disk_usage"} {
		if _, ok := job[name]; !ok {
			t.Errorf("job figure %s missing", name)
		}
	}
	if job["rss"] <= 0 || job["open_files"] < 3 {
		t.Errorf("rss %v KB, %v open files", job["rss"], job["open_files"])
	}
}
