package logging

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newLogger returns a logger writing to a file in a temporary directory
// (file threshold 10) and to the returned buffer (stderr threshold 40),
// both in the default format, and the file's path.
func newLogger(t *testing.T) (*Logger, *bytes.Buffer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "monitor.log")
	var stderr bytes.Buffer
	l, err := New(Options{
		FilePath:        path,
		MaxSizeBytes:    1000000,
		MaxBackups:      50,
		FileFormat:      defaultFormat,
		FileThreshold:   10,
		Stderr:          &stderr,
		StderrFormat:    defaultFormat,
		StderrThreshold: 40,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, &stderr, path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMaxSizeMiB(t *testing.T) {
	for _, c := range []struct {
		bytes int64
		want  int
	}{
		{-1, 1},
		{0, 1},
		{1, 1},
		{1000000, 1},
		{1 << 20, 1},
		{1<<20 + 1, 2},
		{10 << 20, 10},
		{10<<20 + 5, 11},
	} {
		if got := maxSizeMiB(c.bytes); got != c.want {
			t.Errorf("maxSizeMiB(%d) = %d, want %d", c.bytes, got, c.want)
		}
	}
	if got := maxSizeMiB(1<<63 - 1); int64(got)*mebibyte < 0 {
		t.Errorf("maxSizeMiB(MaxInt64) = %d overflows in bytes", got)
	}
}

func TestNewOpensFileAtOnce(t *testing.T) {
	l, _, path := newLogger(t)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("log file not created by New: %v", err)
	}
	if info.Size() != 0 {
		t.Errorf("new log file has %d bytes", info.Size())
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("log file mode %v, want 0600", perm)
	}
	l.Info("starting")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); !strings.HasSuffix(got, " INFO - main - starting\n") {
		t.Errorf("log file holds %q", got)
	}
}

func TestNewCreatesDirectories(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "monitor.log")
	l, err := New(Options{FilePath: path, FileFormat: FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestNewBadPath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "regular")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(file, "monitor.log")
	_, err := New(Options{FilePath: path, FileFormat: defaultFormat})
	if err == nil {
		t.Fatal("no error for a log file under a regular file")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
}

func TestNewBadFormats(t *testing.T) {
	dir := t.TempDir()
	for _, opts := range []Options{
		{FilePath: filepath.Join(dir, "a.log"), FileFormat: "%(asctime)s %(process)d %(bogus)s"},
		{Stderr: &bytes.Buffer{}, StderrFormat: ""},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("New(%+v): no error", opts)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a.log")); err == nil {
		t.Error("log file created despite a bad format")
	}
}

func TestNoOutputs(t *testing.T) {
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Error("goes nowhere")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPerOutputThresholds(t *testing.T) {
	l, stderr, path := newLogger(t)
	ctx := context.Background()
	if !l.Enabled(ctx, slog.LevelDebug) {
		t.Error("logger drops DEBUG although the file wants it")
	}
	l.Debug("debug line")
	l.Info("info line")
	l.Error("error line")
	l.Log(ctx, LevelCritical, "critical line")

	file := readFile(t, path)
	for _, s := range []string{"DEBUG - main - debug line", "INFO - main - info line", "ERROR - main - error line", "CRITICAL - main - critical line"} {
		if !strings.Contains(file, s) {
			t.Errorf("file lacks %q:\n%s", s, file)
		}
	}
	if strings.Contains(stderr.String(), "debug line") || strings.Contains(stderr.String(), "info line") {
		t.Errorf("stderr got a line below ERROR:\n%s", stderr)
	}
	for _, s := range []string{"ERROR - main - error line", "CRITICAL - main - critical line"} {
		if !strings.Contains(stderr.String(), s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
}

func TestSetThresholds(t *testing.T) {
	l, stderr, path := newLogger(t)
	ctx := context.Background()
	scanner := l.With(LoopKey, "scanner") // derived before the change

	l.SetThresholds(40, 10)
	scanner.Info("info after swap")
	scanner.Error("error after swap")
	file := readFile(t, path)
	if strings.Contains(file, "info after swap") || !strings.Contains(file, "ERROR - scanner - error after swap") {
		t.Errorf("file after SetThresholds(40, 10):\n%s", file)
	}
	if !strings.Contains(stderr.String(), "INFO - scanner - info after swap") {
		t.Errorf("stderr after SetThresholds(40, 10):\n%s", stderr)
	}

	l.SetThresholds(50, 50)
	if l.Enabled(ctx, slog.LevelError) {
		t.Error("logger enabled for ERROR with both thresholds at 50")
	}
	stderr.Reset()
	scanner.Error("dropped everywhere")
	scanner.Log(ctx, LevelCritical, "critical everywhere")
	if file := readFile(t, path); strings.Contains(file, "dropped everywhere") || !strings.Contains(file, "critical everywhere") {
		t.Errorf("file after SetThresholds(50, 50):\n%s", file)
	}
	if s := stderr.String(); strings.Contains(s, "dropped everywhere") || !strings.Contains(s, "CRITICAL - scanner - critical everywhere") {
		t.Errorf("stderr after SetThresholds(50, 50):\n%s", s)
	}
}

func TestRotation(t *testing.T) {
	l, _, path := newLogger(t)
	line := strings.Repeat("x", 200)
	written := 0
	for written <= 1<<20+4096 {
		l.Debug(line)
		written += len(line) + 40
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	matches, err := filepath.Glob(filepath.Join(filepath.Dir(path), "monitor-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) != 1 {
		t.Fatalf("backups %v, want one", matches)
	}
	backup, err := os.Stat(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	if backup.Size() > 1<<20 || backup.Size() < 1<<20-1000 {
		t.Errorf("backup has %d bytes, want just under 1 MiB", backup.Size())
	}
	if current, err := os.Stat(path); err != nil || current.Size() == 0 {
		t.Errorf("current log file after rotation: %v, %v", current, err)
	}
}
