package config

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// waitFor bounds every wait for an outcome of Watch.
const waitFor = 10 * time.Second

type reloaded struct {
	c   *Config
	err error
}

// watcher runs Watch on path until the test ends and delivers its reloads.
type watcher struct {
	t       *testing.T
	trigger chan struct{}
	got     chan reloaded
}

func startWatch(t *testing.T, path string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{t: t, trigger: make(chan struct{}), got: make(chan reloaded, 100)}
	done := make(chan error, 1)
	watching := make(chan struct{})
	go func() {
		done <- Watch(ctx, path, w.trigger, func(c *Config, err error) { w.got <- reloaded{c, err} }, func() { close(watching) })
	}()
	<-watching
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch returned %v, want nil", err)
			}
		case <-time.After(waitFor):
			t.Errorf("Watch did not return after cancel")
		}
	})
	return w
}

// next waits for the next reload.
func (w *watcher) next() reloaded {
	w.t.Helper()
	select {
	case r := <-w.got:
		return r
	case <-time.After(waitFor):
		w.t.Fatalf("no reload within %v", waitFor)
		return reloaded{}
	}
}

// sync sends a trigger and waits for its reload, which shows that Watch is
// running (its file watch is set up before it serves trigger).
func (w *watcher) sync() reloaded {
	w.t.Helper()
	select {
	case w.trigger <- struct{}{}:
	case <-time.After(waitFor):
		w.t.Fatalf("Watch does not take the trigger")
	}
	return w.next()
}

// none checks that no reload comes within a few debounce periods.
func (w *watcher) none() {
	w.t.Helper()
	select {
	case r := <-w.got:
		w.t.Errorf("unexpected reload %+v", r)
	case <-time.After(3 * debounce):
	}
}

func configWith(delay string) string {
	return "storageRoot: /srv/crashes\nstandardLoopDelay: " + delay + "\n"
}

func wantDelay(t *testing.T, r reloaded, want time.Duration) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("reload error: %v", r.err)
	}
	if r.c.StandardLoopDelay != want {
		t.Fatalf("standardLoopDelay = %v, want %v", r.c.StandardLoopDelay, want)
	}
}

func TestWatchWriteAndTrigger(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "monitorconfig.yaml", configWith("1m"))
	w := startWatch(t, path)
	wantDelay(t, w.sync(), time.Minute)

	writeFile(t, dir, "monitorconfig.yaml", configWith("2m"))
	wantDelay(t, w.next(), 2*time.Minute)
	w.none() // one edit, one reload

	writeFile(t, dir, "unrelated.yaml", "x")
	w.none() // other files in the directory are ignored

	wantDelay(t, w.sync(), 2*time.Minute)
}

func TestWatchRenameReplace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "monitorconfig.yaml", configWith("1m"))
	w := startWatch(t, path)
	wantDelay(t, w.sync(), time.Minute)

	tmp := writeFile(t, dir, ".monitorconfig.yaml.swp", configWith("3m"))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	wantDelay(t, w.next(), 3*time.Minute)
}

func TestWatchBrokenEdit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "monitorconfig.yaml", configWith("1m"))
	w := startWatch(t, path)
	wantDelay(t, w.sync(), time.Minute)

	writeFile(t, dir, "monitorconfig.yaml", configWith("soon"))
	r := w.next()
	if r.c != nil || r.err == nil || !strings.Contains(r.err.Error(), "standardLoopDelay") {
		t.Fatalf("broken edit delivered %+v, want an error naming standardLoopDelay", r)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if r := w.next(); r.err == nil {
		t.Fatalf("removed file delivered %+v, want an error", r)
	}

	writeFile(t, dir, "monitorconfig.yaml", configWith("4m"))
	wantDelay(t, w.next(), 4*time.Minute)
}

// TestWatchSymlinkSwap replays how Kubernetes updates a mounted ConfigMap:
// the file is a symlink through ..data, which is swapped atomically.
func TestWatchSymlinkSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	version := func(name, delay string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name), "monitorconfig.yaml", configWith(delay))
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", "1m")
	path := filepath.Join(dir, "monitorconfig.yaml")
	if err := os.Symlink(filepath.Join("..data", "monitorconfig.yaml"), path); err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, path)
	wantDelay(t, w.sync(), time.Minute)

	version("..v2", "5m")
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	wantDelay(t, w.next(), 5*time.Minute)
}

func TestWatchSetupFails(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing", "monitorconfig.yaml")
	w := startWatch(t, path)
	r := w.next()
	if r.c != nil || r.err == nil || !strings.HasPrefix(r.err.Error(), "watch config file: ") {
		t.Fatalf("first reload %+v, want a watch config file error", r)
	}
	r = w.sync() // trigger still served
	if r.c != nil || r.err == nil || !strings.Contains(r.err.Error(), "load config "+path) {
		t.Fatalf("triggered reload %+v, want a load error", r)
	}
}

func TestWatchStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, filepath.Join(t.TempDir(), "c.yaml"), nil, func(*Config, error) {}, nil)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch = %v, want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Watch did not return on a done context")
	}
}

// TestWatchNoLeak is not parallel, so that the goroutine count is its own.
func TestWatchNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	path := writeFile(t, t.TempDir(), "monitorconfig.yaml", configWith("1m"))
	ctx, cancel := context.WithCancel(context.Background())
	trigger := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, path, trigger, func(*Config, error) {}, nil) }()
	trigger <- struct{}{} // Watch is running, its file watch set up
	writeFile(t, filepath.Dir(path), "monitorconfig.yaml", configWith("2m"))
	cancel()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Watch did not return after cancel")
	}
	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Watch returned, %d before", runtime.NumGoroutine(), before)
		}
		runtime.Gosched()
	}
}
