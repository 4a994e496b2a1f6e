// Package testkit holds the helpers the monitor's tests share (the idea of
// river's riversharedtest and testfactory): waiting by polling with a
// deadline, a locked buffer, configuration files, a handle on a running
// `monitor run`, and factories for processors, jobs and crash pairs.
//
// It is for tests only. It may import testing, pgx, crashstore, pgtest and
// the crash fixtures and generator (crashfixture, crashgen), but none of the
// loops (scanner, priority, cleanup), whose in-package tests import it.
package testkit

import (
	"bytes"
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// PollInterval is how often Poll, Eventually and WaitLog check.
const PollInterval = 10 * time.Millisecond

// WaitTimeout bounds a wait for something the code under test does: 30 s
// when CI=true (a loaded runner), else 10 s.
func WaitTimeout() time.Duration {
	if os.Getenv("CI") == "true" {
		return 30 * time.Second
	}
	return 10 * time.Second
}

// Poll checks cond every PollInterval until it holds, and reports whether it
// did before d passed (or the test's context ended). It never sleeps longer
// than it must: a condition that holds at once returns at once.
func Poll(t testing.TB, d time.Duration, cond func() bool) bool {
	t.Helper()
	return poll(t, d, PollInterval, nil, cond)
}

// Eventually polls cond until it holds, failing the test naming what after
// WaitTimeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, WaitTimeout(), what, cond)
}

// EventuallyWithin is Eventually with the deadline d.
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(t, d, PollInterval, nil, cond) {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// poll checks cond every interval until it holds (true), or until d has
// passed, the test's context has ended or abort is closed (cond's last
// answer).
func poll(t testing.TB, d, interval time.Duration, abort <-chan struct{}, cond func() bool) bool {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	ctx := t.Context()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return cond()
		case <-abort:
			return cond()
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// SyncBuffer is a bytes.Buffer that several goroutines may write (a logger's
// workers, a command's output) while the test reads it. The zero value is
// ready.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// withoutCancel is the test's context for helpers that may run in cleanups,
// after t.Context() is cancelled.
func withoutCancel(t testing.TB) context.Context {
	return context.WithoutCancel(t.Context())
}

// Clock is a settable clock for code that takes a Now func. It is safe
// for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading now.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set sets the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
