// Package reporter sends the monitor's figures to MonALISA services as ApMon
// datagrams every interval: the monitor's own report (jobs, processors,
// oldest queued job, priority requests, inbox, active, and the queuing and
// cleanup rates over the interval), the pending jobs of each processor in a
// cluster of their own, and what the ApMon libraries' background monitoring
// sends: the host's figures (cluster <name>_SysInfo) and the monitor
// process's own (cluster <name>_JobInfo). It reads package figures and runs
// no SQL of its own; package apmon encodes and sends.
package reporter

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/crashmonitor/monitor/apmon"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/loop"
)

// Settings are what the configuration says of the reports; they are read
// before every report, so that a reload applies at once.
type Settings struct {
	// Destinations are services and configuration pages; none, no reports.
	Destinations []apmon.Destination
	Cluster      string
	Node         string
	Interval     time.Duration
	MaxMsgRate   int
}

// Options configures a Reporter.
type Options struct {
	Figures *figures.Figures
	// Settings returns the current settings.
	Settings func() Settings
	// Changed, when not nil, returns a channel closed when the settings
	// change; the reporter then re-reads them.
	Changed func() <-chan struct{}
	// WorkDir is the directory whose file system the job figures describe
	// (the monitor's storage tree).
	WorkDir string
	Logger  *slog.Logger

	// ProcRoot is the /proc tree read ("/proc" when empty), Now the clock
	// (time.Now) and Sender's options' Resolver and IntN; tests set them.
	ProcRoot string
	Now      func() time.Time
	Resolver apmon.Resolver
	IntN     func(n int) int
}

// Reporter sends the reports.
type Reporter struct {
	opts    Options
	proc    proc
	sampler *figures.Sampler // its rates are over the time since the previous report
}

// New returns the reporter of opts.
func New(opts Options) *Reporter {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	return &Reporter{opts: opts, proc: proc{root: opts.ProcRoot}, sampler: figures.NewSampler(opts.Figures)}
}

// Run sends a report at once and then every interval to every destination
// until ctx is done. Nothing is sent while there is no destination. It
// returns an error only when the UDP socket cannot be opened.
func (r *Reporter) Run(ctx context.Context) error {
	sender, err := apmon.NewSender(apmon.SenderOptions{
		Logger: r.opts.Logger, Resolver: r.opts.Resolver, Now: r.opts.Now, IntN: r.opts.IntN,
	})
	if err != nil {
		return err
	}
	var sending sync.WaitGroup
	defer sending.Wait()
	sending.Go(func() { sender.Run(ctx) })

	pages := apmon.NewPages(r.opts.Logger, r.opts.Now)
	var last time.Time // when the last report went out
	for {
		var changed <-chan struct{}
		if r.opts.Changed != nil {
			changed = r.opts.Changed()
		}
		set := r.opts.Settings()
		wait := time.Duration(-1) // until the settings change
		if len(set.Destinations) > 0 {
			now := r.opts.Now()
			next := last.Add(set.Interval)
			if !now.Before(next) {
				r.send(ctx, sender, pages, set)
				last, next = now, now.Add(set.Interval)
			}
			wait = next.Sub(now)
		} else {
			last = time.Time{} // the first destination gets a report at once
		}
		if !loop.Wait(ctx, wait, changed) {
			return nil
		}
	}
}

// send builds one report and hands it to the sender.
func (r *Reporter) send(ctx context.Context, sender *apmon.Sender, pages *apmon.Pages, set Settings) {
	var services []apmon.Destination
	var urls []string
	for _, d := range set.Destinations {
		if d.URL != "" {
			urls = append(urls, d.URL)
		} else {
			services = append(services, d)
		}
	}
	services = append(services, pages.Destinations(ctx, urls)...)
	if len(services) == 0 || ctx.Err() != nil {
		return
	}
	sender.Send(apmon.Batch{Dests: services, MaxRate: set.MaxMsgRate, Msgs: r.messages(ctx, set)})
}

// messages builds the report's messages: the monitor's figures, one per
// processor, the host's and the process's.
func (r *Reporter) messages(ctx context.Context, set Settings) []apmon.Message {
	now := r.opts.Now()
	main := apmon.Message{Cluster: set.Cluster, Node: set.Node}
	// The database figures are left out when they could not be read now,
	// rather than sent stale as new (the service keeps the last values).
	sample := r.sampler.Sample(ctx)
	for _, p := range sample.Params {
		if p.Count {
			main.Params = append(main.Params, apmon.Int(p.Name, int64(p.Value)))
		} else {
			main.Params = append(main.Params, apmon.Float(p.Name, p.Value))
		}
	}
	msgs := []apmon.Message{main}
	if st, _, err := r.opts.Figures.DB(ctx); err == nil && sample.DBErr == nil {
		for _, p := range st.Processors {
			if p.Name != "" {
				msgs = append(msgs, apmon.Message{Cluster: set.Cluster + "_Processors", Node: p.Name,
					Params: []apmon.Param{apmon.Int("pending_jobs", p.Pending)}})
			}
		}
	}
	if sys := r.proc.system(now); len(sys) > 0 {
		msgs = append(msgs, apmon.Message{Cluster: set.Cluster + "_SysInfo", Node: set.Node, Params: sys})
	}
	if job := r.proc.job(r.opts.WorkDir); len(job) > 0 {
		msgs = append(msgs, apmon.Message{Cluster: set.Cluster + "_JobInfo", Node: set.Node, Params: job})
	}
	return msgs
}
