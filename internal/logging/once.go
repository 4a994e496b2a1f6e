package logging

import (
	"log/slog"
	"sync"
)

// ProblemLog logs a problem with a path once: a malformed entry met on every
// pass of a walk is reported the first time only, so a broken tree cannot
// flood the log. It remembers at most limit paths; past that it forgets them
// all and starts over, so memory stays bounded and a long-lived problem is
// reported again now and then. It is safe for concurrent use.
type ProblemLog struct {
	logger *slog.Logger
	limit  int
	mu     sync.Mutex
	seen   map[string]struct{}
}

// NewProblemLog returns a ProblemLog writing WARNING lines to logger.
func NewProblemLog(logger *slog.Logger, limit int) *ProblemLog {
	return &ProblemLog{logger: logger, limit: max(limit, 1), seen: map[string]struct{}{}}
}

// Report logs err for path unless it was already reported.
func (p *ProblemLog) Report(path string, err error) {
	p.mu.Lock()
	_, dup := p.seen[path]
	if !dup {
		if len(p.seen) >= p.limit {
			clear(p.seen)
		}
		p.seen[path] = struct{}{}
	}
	p.mu.Unlock()
	if !dup {
		p.logger.Warn("skipping a malformed entry in the crash tree (reported once)", "path", path, "error", err)
	}
}
