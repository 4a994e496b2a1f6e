package reporter

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crashmonitor/monitor/apmon"
)

// userHZ is the unit of the times in /proc/<pid>/stat: the kernel reports
// them in USER_HZ, 100 a second on every Linux architecture.
const userHZ = 100

// cpuFields are the columns of /proc/stat's cpu line, in order, under the
// names the ApMon libraries give their percentages.
func cpuFields() []string {
	return []string{"cpu_usr", "cpu_nice", "cpu_sys", "cpu_idle", "cpu_iowait", "cpu_irq", "cpu_softirq", "cpu_steal", "cpu_guest"}
}

// vmFields are the /proc/vmstat counters and the libraries' names of their
// rates (per second), in the order they are sent.
func vmFields() [][2]string {
	return [][2]string{{"pgpgin", "pages_in"}, {"pgpgout", "pages_out"}, {"pswpin", "swap_in"}, {"pswpout", "swap_out"}}
}

// hostSample is one reading of the host's cumulative counters.
type hostSample struct {
	at  time.Time
	cpu []float64          // ticks, in cpuFields order; nil when unreadable
	vm  map[string]float64 // the vmFields counters
}

// proc reads the host's and this process's figures from a /proc tree, as
// the ApMon libraries' system and job monitoring do. The percentages of CPU
// time and the paging rates are over the time since the previous reading,
// so the first reading has none of them.
type proc struct {
	root string // "/proc"
	prev *hostSample
}

// system returns the host's figures, all doubles as the libraries send
// them: CPU time shares (percent), paging rates, load, processes by state,
// memory and swap (MB and percent), uptime (days), CPU count and totals.
func (p *proc) system(now time.Time) []apmon.Param {
	var out []apmon.Param
	add := func(name string, v float64) { out = append(out, apmon.Float(name, v)) }

	cur := &hostSample{at: now, vm: map[string]float64{}}
	cpus := 0
	if b, err := os.ReadFile(filepath.Join(p.root, "stat")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) > 4 && f[0] == "cpu":
				// Older kernels have fewer columns: the missing ones are 0.
				f = append(f[1:], "0", "0", "0", "0", "0")
				cur.cpu = numbers(f, len(cpuFields()))
			case len(f) > 0 && strings.HasPrefix(f[0], "cpu"):
				cpus++
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(p.root, "vmstat")); err == nil {
		names := map[string]bool{}
		for _, f := range vmFields() {
			names[f[0]] = true
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && names[f[0]] {
				if v, err := strconv.ParseFloat(f[1], 64); err == nil {
					cur.vm[f[0]] = v
				}
			}
		}
	}
	if prev := p.prev; prev != nil {
		if prev.cpu != nil && cur.cpu != nil {
			var total float64
			d := make([]float64, len(cur.cpu))
			for i := range cur.cpu {
				d[i] = max(cur.cpu[i]-prev.cpu[i], 0)
				total += d[i]
			}
			if total > 0 {
				for i, name := range cpuFields() {
					add(name, 100*d[i]/total)
				}
				add("cpu_usage", 100*(total-d[3])/total)
			}
		}
		if secs := cur.at.Sub(prev.at).Seconds(); secs > 0 {
			for _, f := range vmFields() {
				key, name := f[0], f[1]
				if v, ok := cur.vm[key]; ok {
					if old, ok := prev.vm[key]; ok && v >= old {
						add(name, (v-old)/secs)
					}
				}
			}
		}
	}
	p.prev = cur

	if b, err := os.ReadFile(filepath.Join(p.root, "loadavg")); err == nil {
		if f := numbers(strings.Fields(string(b)), 3); f != nil {
			add("load1", f[0])
			add("load5", f[1])
			add("load15", f[2])
		}
	}
	out = append(out, p.processes()...)
	mem := p.meminfo()
	if total, ok := mem["MemTotal"]; ok && total > 0 {
		used := total - mem["MemFree"] - mem["Buffers"] - mem["Cached"]
		add("mem_used", used/1024)
		add("mem_free", mem["MemFree"]/1024)
		add("mem_usage", 100*used/total)
		add("total_mem", total/1024)
	}
	if total, ok := mem["SwapTotal"]; ok {
		used := total - mem["SwapFree"]
		add("swap_used", used/1024)
		add("swap_free", mem["SwapFree"]/1024)
		if total > 0 {
			add("swap_usage", 100*used/total)
		}
		add("total_swap", total/1024)
	}
	if up, ok := p.uptime(); ok {
		add("uptime", up/86400)
	}
	if cpus > 0 {
		add("no_CPUs", float64(cpus))
	}
	return out
}

// processes counts the processes, in all and by state (D, R, S, T, Z: the
// states the libraries report).
func (p *proc) processes() []apmon.Param {
	entries, err := os.ReadDir(p.root)
	if err != nil {
		return nil
	}
	states := map[byte]int{'D': 0, 'R': 0, 'S': 0, 'T': 0, 'Z': 0}
	total := 0
	for _, e := range entries {
		if strings.Trim(e.Name(), "0123456789") != "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.root, e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		total++
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
			if _, ok := states[b[i+2]]; ok {
				states[b[i+2]]++
			}
		}
	}
	out := []apmon.Param{apmon.Float("processes", float64(total))}
	for _, s := range []byte("DRSTZ") {
		out = append(out, apmon.Float("processes_"+string(s), float64(states[s])))
	}
	return out
}

// job returns this process's figures, as the libraries' job monitoring
// reports a job: run and CPU time (s), CPU share of its run time and memory
// share (percent), resident and virtual size (KB), open files, and the size,
// use and free space (MB, percent) of the file system holding workDir.
func (p *proc) job(workDir string) []apmon.Param {
	var out []apmon.Param
	add := func(name string, v float64) { out = append(out, apmon.Float(name, v)) }
	self := filepath.Join(p.root, "self")
	if b, err := os.ReadFile(filepath.Join(self, "stat")); err == nil {
		// Fields after the command, which may hold spaces and parentheses:
		// state is field 3, utime 14, stime 15, starttime 22.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			f := strings.Fields(string(b[i+1:]))
			if v := numbers(f[min(1, len(f)):], 19); v != nil { // from field 4 on
				up, ok := p.uptime()
				cpu := (v[10] + v[11]) / userHZ
				run := up - v[18]/userHZ
				if ok && run >= 0 {
					add("run_time", run)
				}
				add("cpu_time", cpu)
				if ok && run > 0 {
					add("cpu_usage", 100*cpu/run)
				}
			}
		}
	}
	status := readKB(filepath.Join(self, "status"))
	if rss, ok := status["VmRSS"]; ok {
		add("rss", rss)
		if total := p.meminfo()["MemTotal"]; total > 0 {
			add("mem_usage", 100*rss/total)
		}
	}
	if vsz, ok := status["VmSize"]; ok {
		add("virtualmem", vsz)
	}
	if f, err := os.Open(filepath.Join(self, "fd")); err == nil {
		names, err := f.Readdirnames(-1)
		f.Close()
		if err == nil {
			add("open_files", float64(len(names)-1)) // not the one reading them
		}
	}
	var fs syscall.Statfs_t
	if workDir != "" && syscall.Statfs(workDir, &fs) == nil && fs.Blocks > 0 {
		bsize := float64(fs.Bsize)
		total := float64(fs.Blocks) * bsize
		used := float64(fs.Blocks-fs.Bfree) * bsize
		avail := float64(fs.Bavail) * bsize
		add("disk_total", total/(1<<20))
		add("disk_used", used/(1<<20))
		add("disk_free", avail/(1<<20))
		if used+avail > 0 {
			add("disk_usage", 100*used/(used+avail)) // as df's Use%
		}
	}
	return out
}

// meminfo reads /proc/meminfo (values in kB).
func (p *proc) meminfo() map[string]float64 {
	return readKB(filepath.Join(p.root, "meminfo"))
}

// uptime reads the seconds since boot.
func (p *proc) uptime() (float64, bool) {
	b, err := os.ReadFile(filepath.Join(p.root, "uptime"))
	if err != nil {
		return 0, false
	}
	v := numbers(strings.Fields(string(b)), 1)
	if v == nil {
		return 0, false
	}
	return v[0], true
}

// readKB reads "Name: value kB" lines.
func readKB(path string) map[string]float64 {
	m := map[string]float64{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if fields := strings.Fields(rest); ok && len(fields) > 0 {
			if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
				m[name] = v
			}
		}
	}
	return m
}

// numbers parses the first n of f as numbers; nil when there are fewer or
// one is not a number.
func numbers(f []string, n int) []float64 {
	if len(f) < n {
		return nil
	}
	out := make([]float64, n)
	for i := range n {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return nil
		}
		out[i] = v
	}
	return out
}
