package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// LevelCritical is CRITICAL (Python 50); slog has no such level.
const LevelCritical = slog.Level(12)

// LoopKey is the attribute key that names the loop a line comes from
// ("scanner", "priority", "cleanup"). The classic formats render it as
// %(threadName)s and leave it out of %(message)s; lines without it render
// %(threadName)s as "main".
const LoopKey = "loop"

// mainThread is what %(threadName)s renders for a line without a LoopKey
// attribute.
const mainThread = "main"

// loggerName is what %(name)s renders: the classic logger name.
const loggerName = "monitor"

// asctimeLayout is Python's default asctime, "2026-11-22 14:03:07,123".
const asctimeLayout = "2006-01-02 15:04:05,000"

// Level maps a Python-style threshold (0..50) to the slog level that passes
// the same records: <=10 DEBUG, <=20 INFO, <=30 WARN, <=40 ERROR, else
// [LevelCritical].
func Level(threshold int) slog.Level {
	switch {
	case threshold <= 10:
		return slog.LevelDebug
	case threshold <= 20:
		return slog.LevelInfo
	case threshold <= 30:
		return slog.LevelWarn
	case threshold <= 40:
		return slog.LevelError
	default:
		return LevelCritical
	}
}

// levelName is the Python level name of l: DEBUG, INFO, WARNING, ERROR or
// CRITICAL. A level between two names takes the lower one.
func levelName(l slog.Level) string {
	switch {
	case l >= LevelCritical:
		return "CRITICAL"
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

// NewHandler returns a handler writing one line per record to w in format
// ([FormatJSON] or a classic format accepted by [ValidateFormat]), passing
// records at or above level (nil means INFO). Each line is written with a
// single Write call, serialised across the handler and the handlers derived
// from it.
//
// A JSON line is an object with the keys time, level (DEBUG, INFO, WARNING,
// ERROR or CRITICAL), msg, then the attributes (among them [LoopKey] when
// set).
//
// A classic line copies the format's literal text and replaces %(asctime)s
// with the local time as "2026-11-22 14:03:07,123", %(levelname)s with the
// level name, %(name)s with "monitor", %(threadName)s with the [LoopKey]
// value (or "main") and %(message)s with the message followed by the
// attributes as " key=value" (groups as dotted keys; values with spaces,
// quotes, "=" or control characters, and empty values, quoted as Go strings).
// When the format has no %(threadName)s, the message is prefixed with
// "<threadName> - ", as the classic monitor did, so the default format
// "%(asctime)s %(levelname)s - %(message)s" gives
// "<asctime> <LEVEL> - <threadName> - <message>". Newlines and carriage
// returns in the message are escaped as \n and \r.
func NewHandler(w io.Writer, format string, level slog.Leveler) (slog.Handler, error) {
	if err := ValidateFormat(format); err != nil {
		return nil, err
	}
	if level == nil {
		level = slog.LevelInfo
	}
	if format == FormatJSON {
		return slog.NewJSONHandler(w, &slog.HandlerOptions{
			Level:       level,
			ReplaceAttr: jsonLevelName,
		}), nil
	}
	h := &classicHandler{mu: new(sync.Mutex), w: w, level: level}
	last := 0
	for _, m := range placeholder.FindAllStringSubmatchIndex(format, -1) {
		if m[0] > last {
			h.segments = append(h.segments, segment{literal: format[last:m[0]]})
		}
		name := format[m[2]:m[3]]
		h.segments = append(h.segments, segment{field: name})
		if name == "threadName" {
			h.hasThread = true
		}
		last = m[1]
	}
	if last < len(format) {
		h.segments = append(h.segments, segment{literal: format[last:]})
	}
	return h, nil
}

// jsonLevelName renders the JSON handler's level as a Python level name.
func jsonLevelName(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(levelName(l))
		}
	}
	return a
}

// segment is one piece of a classic format: literal text, or the name of a
// placeholder when field is set.
type segment struct {
	literal string
	field   string
}

// classicHandler writes records in a classic (Python logging) line format.
type classicHandler struct {
	mu        *sync.Mutex // shared by derived handlers: one Write per line
	w         io.Writer
	level     slog.Leveler
	segments  []segment
	hasThread bool   // the format has %(threadName)s
	thread    string // LoopKey value from WithAttrs; "" = none
	attrs     []byte // rendered attributes from WithAttrs, each " key=value"
	prefix    string // open groups as "a.b."
}

// Enabled reports whether level is at or above the handler's level.
func (h *classicHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

// WithAttrs returns a handler whose lines carry attrs.
func (h *classicHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = append([]byte(nil), h.attrs...)
	for _, a := range attrs {
		if t, ok := h.loopValue(a); ok {
			h2.thread = t
			continue
		}
		h2.attrs = appendAttr(h2.attrs, h.prefix, a)
	}
	return &h2
}

// WithGroup returns a handler that puts later attributes under name.
func (h *classicHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

// loopValue reports whether a, taken at the handler's level of grouping, is
// the LoopKey attribute, and its value.
func (h *classicHandler) loopValue(a slog.Attr) (string, bool) {
	if h.prefix != "" || a.Key != LoopKey {
		return "", false
	}
	return a.Value.Resolve().String(), true
}

// Handle writes r as one line.
func (h *classicHandler) Handle(_ context.Context, r slog.Record) error {
	thread := h.thread
	r.Attrs(func(a slog.Attr) bool {
		if t, ok := h.loopValue(a); ok {
			thread = t
		}
		return true
	})
	if thread == "" {
		thread = mainThread
	}

	buf := make([]byte, 0, 256)
	for _, s := range h.segments {
		switch s.field {
		case "":
			buf = append(buf, s.literal...)
		case "asctime":
			if !r.Time.IsZero() {
				buf = r.Time.Local().AppendFormat(buf, asctimeLayout)
			}
		case "levelname":
			buf = append(buf, levelName(r.Level)...)
		case "name":
			buf = append(buf, loggerName...)
		case "threadName":
			buf = appendEscaped(buf, thread)
		case "message":
			if !h.hasThread {
				buf = appendEscaped(buf, thread)
				buf = append(buf, " - "...)
			}
			buf = appendEscaped(buf, r.Message)
			buf = append(buf, h.attrs...)
			r.Attrs(func(a slog.Attr) bool {
				if _, ok := h.loopValue(a); !ok {
					buf = appendAttr(buf, h.prefix, a)
				}
				return true
			})
		}
	}
	buf = append(buf, '\n')

	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(buf)
	return err
}

// appendAttr appends a as " key=value" (a group as one such pair per
// member, with dotted keys) with prefix before the key.
func appendAttr(buf []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			buf = appendAttr(buf, prefix, g)
		}
		return buf
	}
	buf = append(buf, ' ')
	buf = appendValue(buf, prefix+a.Key)
	buf = append(buf, '=')
	return appendValue(buf, valueString(a.Value))
}

// valueString renders a resolved, non-group value as text.
func valueString(v slog.Value) string {
	switch v.Kind() {
	case slog.KindTime:
		return v.Time().Format(time.RFC3339)
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindAny:
		// fmt.Sprint uses Error or String when there is one, and survives
		// their panicking on a nil receiver.
		return fmt.Sprint(v.Any())
	default:
		return v.String()
	}
}

// appendValue appends s, quoted with strconv.Quote when it is empty or has
// a space, a quote, "=", a control character or anything unprintable.
func appendValue(buf []byte, s string) []byte {
	if needsQuote(s) {
		return strconv.AppendQuote(buf, s)
	}
	return append(buf, s...)
}

// needsQuote reports whether s must be quoted to stay one logfmt value.
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r == '"' || r == '=' || r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}

// appendEscaped appends free text (a message) with newlines and carriage
// returns escaped, so that a record stays on one line.
func appendEscaped(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\n':
			buf = append(buf, `\n`...)
		case '\r':
			buf = append(buf, `\r`...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}
