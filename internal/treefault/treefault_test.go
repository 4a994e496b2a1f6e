package treefault

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/figures"
)

// fault is a TreeFault of kind of the tree at root.
func fault(kind crashstore.FaultKind, root string, write bool) *crashstore.TreeFault {
	return &crashstore.TreeFault{Kind: kind, Root: root, Write: write, Err: errors.New("boom")}
}

// TestBoard: a fault is logged once when it begins and once when it ends,
// whatever the number of failures in between; the work waits MinRetry, then
// twice as long after each due try that fails, at most MaxRetry; early
// failures change nothing; a read that works does not end a fault that only
// a write can show to be over.
func TestBoard(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&buf, nil))
		fig := figures.New(figures.Options{})
		b := New(fig)
		arch := crashstore.New("/srv/archive/failed", crashstore.Options{})
		b.Register(FailedArchive, arch)
		root := arch.Root()
		ctx := t.Context()

		if _, waiting := b.Waiting(root, true); waiting || !b.NextTry(root).IsZero() {
			t.Fatal("a tree without a fault waits")
		}
		var waits []time.Duration
		for range 8 {
			b.Fail(ctx, logger, fault(crashstore.FaultFull, root, true))
			b.Fail(ctx, logger, fault(crashstore.FaultFull, root, true)) // another worker, same try
			until, waiting := b.Waiting(root, true)
			if !waiting || !until.Equal(b.NextTry(root, "/elsewhere")) {
				t.Fatalf("after a failure: waiting %v until %v, NextTry %v", waiting, until, b.NextTry(root))
			}
			waits = append(waits, time.Until(until))
			time.Sleep(time.Until(until))
		}
		want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, MaxRetry, MaxRetry, MaxRetry}
		if !slices.Equal(waits, want) {
			t.Errorf("waits %v, want %v", waits, want)
		}
		log := buf.String()
		if n := strings.Count(log, "storage fault"); n != 1 ||
			!strings.Contains(log, "archive of failed crashes file system full: free space on /srv/archive/failed") ||
			!strings.Contains(log, "cleanups of failed crashes wait and retry; successful ones go on") {
			t.Errorf("want one line saying what to do:\n%s", log)
		}

		if _, waiting := b.Waiting(root, false); waiting {
			t.Error("reading waits for a full file system")
		}
		b.Succeed(ctx, logger, root, false)
		if b.NextTry(root).IsZero() {
			t.Error("a read that worked ended a full file system's fault")
		}
		b.Fail(ctx, logger, fault(crashstore.FaultReadOnly, root, true))
		if !strings.Contains(buf.String(), "storage fault changed: archive of failed crashes file system read-only: remount") {
			t.Errorf("a fault of another kind is not logged:\n%s", buf.String())
		}
		buf.Reset()
		time.Sleep(time.Minute)
		b.Succeed(ctx, logger, root, true)
		b.Succeed(ctx, logger, root, true)
		if n := strings.Count(buf.String(), "storage fault cleared: archive of failed crashes /srv/archive/failed works again after 2m31s"); n != 1 {
			t.Errorf("want one line saying the fault cleared after its 2m31s (91s of tries, a minute more):\n%s", buf.String())
		}
		if _, waiting := b.Waiting(root, true); waiting || !b.NextTry(root).IsZero() {
			t.Error("the work still waits after the fault ended")
		}
		events := fig.Events()
		if len(events) != 3 || events[0].Kind != figures.EventStorage {
			t.Errorf("events %+v, want the start, the change and the end", events)
		}
	})
}

// TestBoardVanished: a vanished tree says why and to mount it again, and a
// read that works ends it.
func TestBoardVanished(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	b := New(nil)
	std := crashstore.New("/srv/crashes", crashstore.Options{})
	b.Register(StorageRoot, std)
	f := &crashstore.TreeFault{Kind: crashstore.FaultVanished, Root: std.Root(), Err: errors.New("/srv/crashes holds no crash tree any more")}
	b.Fail(t.Context(), logger, f)
	if !strings.Contains(buf.String(), "storage fault: storage root vanished (/srv/crashes holds no crash tree any more): mount its file system again") {
		t.Errorf("log:\n%s", buf.String())
	}
	b.Succeed(t.Context(), logger, std.Root(), false)
	if !strings.Contains(buf.String(), "storage fault cleared: storage root /srv/crashes works again") {
		t.Errorf("a read that worked did not end a vanished tree's fault:\n%s", buf.String())
	}
}

// TestDescribe: each kind says what to do.
func TestDescribe(t *testing.T) {
	t.Parallel()
	for kind, want := range map[crashstore.FaultKind]string{
		crashstore.FaultFull:     "file system full: free space on /x",
		crashstore.FaultReadOnly: "file system read-only: remount /x read-write",
		crashstore.FaultDenied:   "not permitted: let the monitor's user read and write /x",
		crashstore.FaultIO:       "I/O error: check the device or the network mount of /x",
	} {
		got := describe(SuccessfulArchive, &crashstore.TreeFault{Kind: kind, Root: "/x", Err: syscall.EIO})
		if !strings.Contains(got, want) || !strings.HasPrefix(got, "archive of successful crashes") {
			t.Errorf("%v: %q, want %q", kind, got, want)
		}
	}
}
