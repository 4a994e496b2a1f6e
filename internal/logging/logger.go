// Package logging builds the daemon's logger: log/slog records written to a
// rotating log file and to stderr, each with its own threshold and line
// format (the classic Python logging formats or JSON).
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"math"

	"gopkg.in/natefinch/lumberjack.v2"
)

// mebibyte is lumberjack's unit for MaxSize.
const mebibyte = 1 << 20

// Options configures [New].
type Options struct {
	// FilePath is the log file (logFilePathname); "" means no log file.
	// Missing parent directories are created (mode 0755), and a new log file
	// is created with mode 0600 (an existing one keeps its mode), as
	// lumberjack does.
	FilePath string
	// MaxSizeBytes is logFileMaximumSize. The file rotates at a whole number
	// of MiB (1 MiB = 1048576 bytes): logFileMaximumSize is rounded up to the
	// next whole MiB, and anything below 1 MiB (including 0) rotates at
	// 1 MiB, so the default 1000000 rotates at 1 MiB. A rotated file is
	// renamed <name>-<local time>.<ext> in the same directory.
	MaxSizeBytes int64
	// MaxBackups is logFileMaximumBackupHistory: the number of rotated files
	// kept. 0 (or less) keeps them all, as lumberjack does.
	MaxBackups int
	// FileFormat is the file's line format (logFileLineFormatString); see
	// [NewHandler].
	FileFormat string
	// FileThreshold is the file's Python-style threshold
	// (logFileErrorLoggingLevel); see [Level].
	FileThreshold int
	// Stderr receives the stderr lines; nil means no stderr output.
	Stderr io.Writer
	// StderrFormat is the stderr line format (stderrLineFormatString).
	StderrFormat string
	// StderrThreshold is the stderr threshold (stderrErrorLoggingLevel).
	StderrThreshold int
}

// Logger is the daemon's logger with its live levels: a record goes to each
// output whose threshold it meets.
type Logger struct {
	*slog.Logger
	file                   *lumberjack.Logger
	fileLevel, stderrLevel *slog.LevelVar
}

// New returns the logger described by opts. It opens (creating if needed)
// the log file at once, so a bad path fails here, with an error naming the
// path, rather than at the first line.
func New(opts Options) (*Logger, error) {
	l := &Logger{fileLevel: new(slog.LevelVar), stderrLevel: new(slog.LevelVar)}
	l.fileLevel.Set(Level(opts.FileThreshold))
	l.stderrLevel.Set(Level(opts.StderrThreshold))

	var handlers []slog.Handler
	if opts.Stderr != nil {
		h, err := NewHandler(opts.Stderr, opts.StderrFormat, l.stderrLevel)
		if err != nil {
			return nil, fmt.Errorf("stderr line format: %w", err)
		}
		handlers = append(handlers, h)
	}
	if opts.FilePath != "" {
		file := &lumberjack.Logger{
			Filename:   opts.FilePath,
			MaxSize:    maxSizeMiB(opts.MaxSizeBytes),
			MaxBackups: opts.MaxBackups,
			LocalTime:  true,
		}
		h, err := NewHandler(file, opts.FileFormat, l.fileLevel)
		if err != nil {
			return nil, fmt.Errorf("log file line format: %w", err)
		}
		// lumberjack opens (or creates) the file on the first Write, even
		// an empty one.
		if _, err := file.Write(nil); err != nil {
			return nil, fmt.Errorf("open log file %s: %w", opts.FilePath, err)
		}
		l.file = file
		handlers = append(handlers, h)
	}
	// MultiHandler is enabled for a level when any of its handlers is, and
	// hands each record only to the handlers enabled for it.
	l.Logger = slog.New(slog.NewMultiHandler(handlers...))
	return l, nil
}

// maxSizeMiB converts logFileMaximumSize in bytes to lumberjack's MaxSize:
// rounded up to whole MiB, at least 1.
func maxSizeMiB(n int64) int {
	if n <= mebibyte {
		return 1
	}
	mib := n / mebibyte
	if n%mebibyte != 0 {
		mib++
	}
	// lumberjack multiplies MaxSize back into bytes as an int64.
	return int(min(mib, math.MaxInt64/mebibyte, math.MaxInt))
}

// SetThresholds changes the file and stderr thresholds (Python-style, see
// [Level]) of l and of every logger derived from it, at once.
func (l *Logger) SetThresholds(file, stderr int) {
	l.fileLevel.Set(Level(file))
	l.stderrLevel.Set(Level(stderr))
}

// Close closes the log file, if any. A line logged after Close reopens it.
func (l *Logger) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.Close()
}
