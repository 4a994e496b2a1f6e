package scanner

import (
	"errors"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crashmonitor/monitor/crashstore"
)

// read turns the inotify descriptor's events into handle calls until the
// watcher is closed.
func (w *watcher) read() {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return // closed
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := ""
			if ev.Len > 0 {
				b := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				name = strings.TrimRight(string(b), "\x00")
			}
			w.handle(int(ev.Wd), ev.Mask, name)
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// handle acts on one event.
func (w *watcher) handle(wd int, mask uint32, name string) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		// Events were lost: a full walk finds what they said.
		w.logger.Debug("inotify queue overflow; scanning the whole inbox")
		w.signal()
		return
	}
	w.mu.Lock()
	d, ok := w.dirs[wd]
	var dir string
	var names bool
	if ok {
		dir, names = d.path, d.name
		if mask&unix.IN_IGNORED != 0 {
			// The directory went (pruned, or its watch removed).
			delete(w.paths, d.path)
			delete(w.dirs, wd)
		}
	}
	w.mu.Unlock()
	if !ok || name == "" || mask&unix.IN_IGNORED != 0 {
		return
	}
	if names {
		w.fileEvent(name, mask)
		return
	}
	p := join(dir, name)
	switch k, _ := w.crashes.DirKind(p); {
	case mask&unix.IN_ISDIR != 0:
		w.addDir(p)
	case k == crashstore.KindLink:
		if !w.watchPair(p) {
			w.signal()
		}
	}
}

// fileEvent follows the writing of a pair's file.
func (w *watcher) fileEvent(name string, mask uint32) {
	var i int
	var id string
	switch {
	case strings.HasSuffix(name, w.crashes.JSONSuffix()):
		i, id = 0, strings.TrimSuffix(name, w.crashes.JSONSuffix())
	case strings.HasSuffix(name, w.crashes.DumpSuffix()):
		i, id = 1, strings.TrimSuffix(name, w.crashes.DumpSuffix())
	default:
		return // the name link, or a stranger
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.pairs[id]
	if !ok {
		return
	}
	f := &p.files[i]
	switch {
	case mask&(unix.IN_CREATE|unix.IN_MODIFY) != 0:
		f.written, f.closed = true, false
		p.closed = time.Time{}
	case mask&(unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO) != 0:
		f.written, f.closed = true, true
	}
	w.check(p)
}

// fileState is what the watcher can tell of a file there before its watch.
type fileState uint8

const (
	fileAbsent  fileState = iota // its creation and close are still to come
	fileClosed                   // open for writing by no one
	fileWriting                  // open for writing: its close is still to come
	fileUnknown                  // there, but whether a writer has it open cannot be told
)

// preState tells whether the file at path, there before its directory was
// watched, is still being written. A read lease (fcntl F_SETLEASE) is
// granted only on a file that no process has open for writing; it is
// released at once. Leases need the file to belong to the monitor's user
// (or CAP_LEASE): for a collector writing as another user the answer is
// fileUnknown, and the settle time decides.
func preState(path string) fileState {
	// Only a regular file is opened: opening a device node or a FIFO a
	// hostile name put there could do more than read.
	var st unix.Stat_t
	switch err := unix.Lstat(path, &st); {
	case errors.Is(err, unix.ENOENT):
		return fileAbsent
	case err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fileUnknown
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return fileAbsent
	case err != nil:
		return fileUnknown
	}
	defer unix.Close(fd)
	switch _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK); {
	case err == nil:
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
		return fileClosed
	case errors.Is(err, unix.EAGAIN):
		return fileWriting
	}
	return fileUnknown
}
