package crashstore

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"
)

// leafAhead is how many webhead directories a walk reads ahead of the one
// whose links it hands out, once it reads ahead. Reading a directory and its
// links costs a few name lookups, and when the tree's metadata is not in the
// kernel's caches (a backlog older than memory holds, a restart) each may
// wait for the disk: read one at a time, the walk waits for every one in
// turn, while a disk serves several at once. The links are still handed out
// in walk order, on the walk's goroutine, with the problems found among
// them.
//
// A walk starts reading one leaf at a time, on its own goroutine: on a tree
// in memory a leaf costs microseconds, and handing it to another goroutine
// would cost more than it saves. It reads ahead from the moment coldLeaves
// leaves of one run of probeLeaves each took longer than coldLeaf to read
// (a wait for the disk; or a leaf of hundreds of links, for which the
// hand-off costs nothing that counts), to its end.
//
// Between the leaves, the window holds what the walk met after each (a past
// directory, a problem of an upper directory), told in its turn; it holds
// at most maxWindow items.
const (
	leafAhead   = 16
	maxWindow   = 64
	coldLeaf    = 200 * time.Microsecond
	coldLeaves  = 4
	probeLeaves = 64
)

// aheadMode chooses when walks read ahead (Store.walkAhead).
type aheadMode int8

const (
	aheadAuto aheadMode = iota
	aheadAlways
	aheadNever
)

// leafRead is a webhead directory read ahead: what its first readChunk
// entries hold, in directory order, and the open directory when it holds
// more, which the walk reads on.
type leafRead struct {
	n      node
	done   chan struct{} // closed when the read is over
	events []leafEvent
	rest   *os.File
}

// leafEvent is one thing a leaf's read found: an inbox link's Entry, or a
// path to report (err satisfies ErrMalformed) or to hand to unreadable.
type leafEvent struct {
	entry Entry
	path  string
	err   error
}

// ahead is an item of a walk's window, in walk order: a leaf being read, or
// (leaf nil) a call to make once the leaves before it are handed out.
type ahead struct {
	leaf *leafRead
	call func()
}

// readLeaf reads the first chunk of l's directory into l.events.
func (s *Store) readLeaf(ctx context.Context, l *leafRead) {
	defer close(l.done)
	f, err := openDir(l.n.path, true)
	if err != nil {
		if !notExist(err) {
			l.events = append(l.events, leafEvent{path: l.n.path, err: err})
		}
		return
	}
	var more bool
	if l.events, more = s.readLinks(ctx, l.n, f, l.events); more {
		l.rest = f
		return
	}
	_ = f.Close()
}

// readLinks reads the next chunk of the webhead directory n from f and
// appends what it holds to events; more reports whether f may hold more
// (fewer entries than asked for means the end was met). A failure to read
// is an event, but a directory removed while it was read (an emptied one
// the scanner's pruner took) holds nothing more: not a fault. The end of
// ctx ends the chunk (the walk returns ctx's error).
func (s *Store) readLinks(ctx context.Context, n node, f *os.File, events []leafEvent) (_ []leafEvent, more bool) {
	des, rerr := f.ReadDir(readChunk)
	for _, de := range des {
		if ctx.Err() != nil {
			return events, false
		}
		if ev, ok := s.leafLink(n, de); ok {
			events = append(events, ev)
		}
	}
	if rerr != nil && !errors.Is(rerr, io.EOF) && !notExist(rerr) {
		events = append(events, leafEvent{path: n.path, err: rerr})
	}
	return events, rerr == nil && len(des) == readChunk
}

// leafLink tells what the entry de of the webhead directory n is: an inbox
// link's Entry, or a problem; ok is false for nothing to say (a hidden
// name, a link gone meanwhile).
func (s *Store) leafLink(n node, de fs.DirEntry) (leafEvent, bool) {
	name := de.Name()
	if hidden(name) {
		return leafEvent{}, false
	}
	link := join(n.path, name)
	switch {
	case de.Type() != fs.ModeSymlink:
		return leafEvent{path: link, err: malformed("walk", link, "a "+typeName(de.Type())+" in a webhead directory")}, true
	case !ValidID(name):
		return leafEvent{path: link, err: malformed("walk", link, "link name is not a crash id")}, true
	}
	e, err := s.linkEntry(n.path, name, n.start)
	switch {
	case err == nil:
		return leafEvent{entry: e}, true
	case notExist(err) && !errors.Is(err, ErrMalformed):
		return leafEvent{}, false
	}
	return leafEvent{path: link, err: err}, true
}

// readAhead reads the leaf n: at once, and hands it out, while the tree
// seems to be in memory; else it starts reading it and, when leafAhead
// leaves are being read, hands out the window's oldest items.
func (w *walker) readAhead(ctx context.Context, n node) error {
	l := &leafRead{n: n, done: make(chan struct{})}
	if !w.ahead {
		start := time.Now()
		w.s.readLeaf(ctx, l)
		if time.Since(start) > coldLeaf {
			w.slowLeaves++
		}
		w.probed++
		w.ahead = w.slowLeaves >= coldLeaves && w.s.walkAhead != aheadNever
		if w.probed == probeLeaves {
			w.probed, w.slowLeaves = 0, 0
		}
		w.window = append(w.window, ahead{leaf: l})
		w.reading++
		return w.drainWindow(ctx)
	}
	go w.s.readLeaf(ctx, l)
	w.window = append(w.window, ahead{leaf: l})
	w.reading++
	for w.reading >= leafAhead {
		if err := w.handOut(ctx); err != nil {
			return err
		}
	}
	return nil
}

// later makes call after the items of the window (at once when it is
// empty). A window grown to maxWindow items hands out its oldest; a
// failure doing so is kept in w.err, for the walk to return.
func (w *walker) later(ctx context.Context, call func()) {
	if len(w.window) == 0 {
		call()
		return
	}
	w.window = append(w.window, ahead{call: call})
	for w.err == nil && len(w.window) > maxWindow {
		w.err = w.handOut(ctx)
	}
}

// handOut hands out the oldest item of the window: a leaf's links to fn
// (and its problems to report and unreadable), once it is read, then the
// rest of it when it holds more than a chunk; a call is made.
func (w *walker) handOut(ctx context.Context) error {
	a := w.window[0]
	w.window = w.window[1:]
	if a.leaf == nil {
		a.call()
		return nil
	}
	w.reading--
	l := a.leaf
	<-l.done
	if l.rest != nil {
		defer l.rest.Close()
	}
	if err := w.tellAll(ctx, l.events); err != nil || l.rest == nil {
		return err
	}
	return w.streamLeaf(ctx, l.n, l.rest)
}

// tellAll tells events in order, then ctx's error if it ended.
func (w *walker) tellAll(ctx context.Context, events []leafEvent) error {
	for _, ev := range events {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.tell(ev); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// tell hands one thing a leaf holds to its callback: a link to fn, a
// problem to report, an unreadable path to unreadable.
func (w *walker) tell(ev leafEvent) error {
	switch {
	case ev.err == nil:
		return w.fn(ev.entry)
	case errors.Is(ev.err, ErrMalformed):
		w.s.report(ev.path, ev.err)
	default:
		skip(w.unreadable, ev.path, ev.err)
	}
	return nil
}

// drainWindow hands out every item left in the window.
func (w *walker) drainWindow(ctx context.Context) error {
	for len(w.window) > 0 {
		if err := w.handOut(ctx); err != nil {
			return err
		}
	}
	return nil
}

// abandon waits for the reads of a walk that stopped early and closes the
// directories they left open.
func (w *walker) abandon() {
	for _, a := range w.window {
		if a.leaf != nil {
			<-a.leaf.done
			if a.leaf.rest != nil {
				_ = a.leaf.rest.Close()
			}
		}
	}
	w.window, w.reading = nil, 0
}

// streamLeaf hands out the links of the webhead directory n from f's
// position on, a chunk at a time.
func (w *walker) streamLeaf(ctx context.Context, n node, f *os.File) error {
	var events []leafEvent
	for more := true; more; {
		events, more = w.s.readLinks(ctx, n, f, events[:0])
		if err := w.tellAll(ctx, events); err != nil {
			return err
		}
	}
	return nil
}
