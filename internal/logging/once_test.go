package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestProblemLog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := NewProblemLog(slog.New(slog.NewTextHandler(&buf, nil)), 2)
	boom := errors.New("dangling link")
	p.Report("/a", boom)
	p.Report("/a", boom)
	p.Report("/b", boom)
	if n := strings.Count(buf.String(), "path=/a"); n != 1 {
		t.Errorf("/a reported %d times, want 1:\n%s", n, buf.String())
	}
	p.Report("/c", boom) // over the limit: memory is cleared
	p.Report("/a", boom)
	if n := strings.Count(buf.String(), "path=/a"); n != 2 {
		t.Errorf("/a reported %d times after the limit was passed, want 2:\n%s", n, buf.String())
	}
}
