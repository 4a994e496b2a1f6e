package app

import (
	"context"
	"strings"

	"github.com/crashmonitor/monitor/config"
	"github.com/crashmonitor/monitor/figures"
)

// watchConfig applies reloads, from edits of the file and from Reload,
// until ctx is done; it closes watching once an edit of the file will be
// seen.
func (a *App) watchConfig(ctx context.Context, watching chan<- struct{}) error {
	return config.Watch(ctx, a.opts.ConfigPath, a.reloads, a.reload, func() { close(watching) })
}

// reload applies a newly loaded configuration: hot settings take effect at
// once, the others are reported as needing a restart, and a broken file
// keeps the running settings.
func (a *App) reload(next *config.Config, err error) {
	a.notify.reloading()
	defer a.notify.reloaded()
	a.logger.Debug("configuration file read", "path", a.opts.ConfigPath)
	if err != nil {
		a.logger.Error("configuration not reloaded; the running settings stay", "error", err)
		return
	}
	cur := a.cfg.Load()
	applied, hot, restart := config.Reload(cur, next)
	for _, key := range restart {
		a.logger.Warn("configuration key changed; restart the monitor to apply it", "key", key)
	}
	if len(hot) == 0 {
		if len(restart) == 0 {
			a.logger.Info("configuration reloaded; nothing changed")
		}
		return
	}
	a.cfg.Store(applied)
	a.logger.SetThresholds(applied.LogFileErrorLoggingLevel, applied.StderrErrorLoggingLevel)
	a.changed.Notify()
	a.logger.Info("configuration reloaded", "applied", strings.Join(hot, ","))
	a.figures.Event(figures.EventReload, "configuration reloaded: "+strings.Join(hot, ", "))
}
