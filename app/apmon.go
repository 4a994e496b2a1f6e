package app

import (
	"context"

	"github.com/crashmonitor/monitor/apmon/reporter"
)

// reportApMon sends the ApMon reports until ctx is done; their settings are
// read before every report, so that a reload applies at once. A failure
// there is logged and stops the reports only, never the daemon.
func (a *App) reportApMon(ctx context.Context) error {
	log := a.loggerFor("apmon")
	r := reporter.New(reporter.Options{
		Figures: a.figures,
		Settings: func() reporter.Settings {
			c := a.cfg.Load()
			return reporter.Settings{Destinations: c.ApMonDestinations, Cluster: c.ApMonClusterName,
				Node: c.ApMonNodeName, Interval: c.ApMonInterval, MaxMsgRate: c.ApMonMaxMsgRate}
		},
		Changed: a.changed.C,
		WorkDir: a.cfg.Load().StorageRoot,
		Logger:  log,
	})
	if err := r.Run(ctx); err != nil {
		log.Error("ApMon reports stopped; the monitor goes on without them", "error", err)
	}
	return nil
}
