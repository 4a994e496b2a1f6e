package config

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce is how long the file must stay quiet after a change before it is
// read, so that one edit (often several events) is one reload.
const debounce = 250 * time.Millisecond

// Watch calls reload with a freshly loaded config, or the load error,
// whenever the file at path changes or a value arrives on trigger (the caller
// sends SIGHUP there). It watches the file's directory, so that editors'
// rename-and-replace and Kubernetes-style symlink swaps are seen, and waits
// until changes have been quiet for a moment (250ms) before reading.
//
// If the file cannot be watched, Watch calls reload(nil, err) once with an
// error starting "watch config file:" and goes on serving trigger. An empty
// path watches nothing; trigger then reloads defaults and environment.
// reload runs on Watch's goroutine, one call at a time; what to apply is the
// caller's choice. watching, when not nil, is called once the watch is in
// place (or could not be set up), so that a caller can tell that an edit
// made from then on will be seen. Watch blocks until ctx is done and then
// returns nil, leaving no goroutine behind.
func Watch(ctx context.Context, path string, trigger <-chan struct{}, reload func(*Config, error), watching func()) error {
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	if path != "" {
		w, err := fsnotify.NewWatcher()
		if err == nil {
			if err = w.Add(filepath.Dir(path)); err != nil {
				w.Close()
			}
		}
		if err != nil {
			reload(nil, fmt.Errorf("watch config file: %w", err))
		} else {
			defer w.Close()
			events, watchErrs = w.Events, w.Errors
		}
	}

	base := filepath.Base(path)
	target, _ := filepath.EvalSymlinks(path)
	if watching != nil {
		watching()
	}
	// changed reports whether ev may have changed the file's content: an
	// event on its name, or any event after which its symlinks resolve
	// elsewhere (a Kubernetes ConfigMap swaps a ..data symlink).
	changed := func(ev fsnotify.Event) bool {
		if ev.Op&^fsnotify.Chmod == 0 {
			return false
		}
		now, _ := filepath.EvalSymlinks(path)
		moved := now != target
		target = now
		return moved || filepath.Base(ev.Name) == base
	}

	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	var quiet <-chan time.Time // non-nil while a reload is pending

	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-trigger:
			if !ok {
				trigger = nil
				continue
			}
			timer.Stop()
			quiet = nil
			reload(Load(path))
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if changed(ev) {
				timer.Reset(debounce)
				quiet = timer.C
			}
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			reload(nil, fmt.Errorf("watch config file: %w", err))
		case <-quiet:
			quiet = nil
			reload(Load(path))
		}
	}
}
