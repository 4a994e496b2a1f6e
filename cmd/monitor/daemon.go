package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/crashmonitor/monitor/app"
	"github.com/crashmonitor/monitor/config"
	"github.com/crashmonitor/monitor/internal/logging"
)

// cmdRun is `monitor run`: the daemon in the foreground until SIGTERM or
// SIGINT. SIGHUP (and edits of the config file) reload the settings that can
// change without a restart. The daemon itself is app's; this wires it to the
// process: configuration, log, signals and exit code.
func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	f := newFlags("run")
	cfg, err := loadConfigNoArgs(f, args)
	if err != nil {
		return err
	}
	path, _ := f.configPath()

	logger, err := openLog(cfg, stderr)
	if err != nil {
		return err
	}
	defer logger.Close()

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// From here on a second SIGTERM/SIGINT kills the process at once:
	// stop() restores the default signal behaviour as soon as the first
	// one has cancelled ctx.
	go func() {
		<-ctx.Done()
		stop()
	}()

	d := app.New(cfg, logger, app.Options{Version: version, ConfigPath: path})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go forwardHangups(ctx, hup, logger, d)

	if err := d.Run(ctx); err != nil {
		logger.Log(ctx, logging.LevelCritical, "monitor stopped on a fatal error", "error", err)
		return &exitError{code: exitFailure, err: err, logged: true}
	}
	return nil
}

// openLog opens the daemon's log: the rotating file and stderr, with the
// configured formats and thresholds.
func openLog(cfg *config.Config, stderr io.Writer) (*logging.Logger, error) {
	logger, err := logging.New(logging.Options{
		FilePath:        cfg.LogFilePathname,
		MaxSizeBytes:    cfg.LogFileMaximumSize,
		MaxBackups:      cfg.LogFileMaximumBackupHistory,
		FileFormat:      cfg.LogFileLineFormatString,
		FileThreshold:   cfg.LogFileErrorLoggingLevel,
		Stderr:          stderr,
		StderrFormat:    cfg.StderrLineFormatString,
		StderrThreshold: cfg.StderrErrorLoggingLevel,
	})
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return logger, nil
}

// forwardHangups turns each SIGHUP into a reload of d until ctx is done.
func forwardHangups(ctx context.Context, hup <-chan os.Signal, logger *logging.Logger, d *app.App) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			logger.Info("SIGHUP received: reloading the configuration")
			d.Reload()
		}
	}
}
