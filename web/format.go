package web

import (
	"strconv"
	"strings"
	"time"
	"unicode"
)

// human writes a duration as an operator reads it at a glance: "<1ms",
// "850ms", "42s", "4m 12s", "2h 5m", "3d 4h". Negative durations count as
// zero.
func human(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return pair(int(d/time.Minute), "m", int(d%time.Minute/time.Second), "s")
	case d < 24*time.Hour:
		return pair(int(d/time.Hour), "h", int(d%time.Hour/time.Minute), "m")
	default:
		return pair(int(d/(24*time.Hour)), "d", int(d%(24*time.Hour)/time.Hour), "h")
	}
}

// pair writes "4m 12s", or "4m" when the smaller unit is zero.
func pair(a int, au string, b int, bu string) string {
	s := strconv.Itoa(a) + au
	if b != 0 {
		s += " " + strconv.Itoa(b) + bu
	}
	return s
}

// seconds turns a report's float seconds into a duration.
func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}

// num writes an integer with thousands separators: 12,345.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	if len(s) <= 3 {
		if neg {
			return "-" + s
		}
		return s
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	lead := len(s) % 3
	if lead == 0 {
		lead = 3
	}
	b.WriteString(s[:lead])
	for i := lead; i < len(s); i += 3 {
		b.WriteByte(',')
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// printable returns s as it is when it is plain printable text, else quoted
// with Go escapes, as `monitor status` shows it: a processor may register
// under any name, and control or bidirectional-override characters must not
// reach the page as they are (html/template escapes markup, not those).
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// clock writes a time of day; full is the same instant with its date and
// zone, for a title attribute.
func clock(t time.Time) (short, full string) {
	if t.IsZero() {
		return "–", ""
	}
	return t.Format("15:04:05"), t.Format("2006-01-02 15:04:05 MST")
}
