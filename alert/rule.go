// Package alert runs the threshold notifications of CONTRACT section 10, in
// the way of bwmon: every alertInterval it samples the monitor's figures
// (package figures; it runs no SQL of its own), keeps each rule's samples
// over the rule's window in a ring buffer, and compares their average with
// the rule's threshold. When a rule starts or stops firing it records the
// new state in the database (so that a restart or a standby taking over
// does not notify an episode twice), then logs one line and runs the rule's
// command, without a shell, with the MONITOR_ALERT_* environment.
package alert

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/queue"
)

// DefaultWindow is a rule's window when it names none.
const DefaultWindow = 5 * time.Minute

// Rule is one threshold rule.
type Rule struct {
	// Name is unique among the rules: letters, digits, '_' and '-'.
	Name string
	// Metric is a parameter of figures.Sample.
	Metric string
	// Below says the rule fires while the average is below Threshold;
	// otherwise while it is above.
	Below     bool
	Threshold float64
	// Window is how far back the averaged samples go.
	Window time.Duration
	// Command, when not empty, is the program and its arguments run on
	// each notice.
	Command []string
	// Repeat, when positive, is how often the command runs again while
	// the rule fires.
	Repeat time.Duration
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ValidName reports whether name may name a rule.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// KnownMetric reports whether a rule may watch metric.
func KnownMetric(metric string) bool { return figures.IsParam(metric) }

// Metrics lists what a rule may watch.
func Metrics() []string { return figures.ParamNames() }

// Direction is "below" or "above".
func (r Rule) Direction() string {
	if r.Below {
		return "below"
	}
	return "above"
}

// Definition spells the rule out in one line; two rules with the same
// definition behave the same. The memory of notifications keeps it, so that
// a changed rule starts afresh.
func (r Rule) Definition() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s window %s", r.Metric, r.Direction(), formatNumber(r.Threshold), formatWindow(r.Window))
	if len(r.Command) > 0 {
		b.WriteString(" command")
		for _, a := range r.Command {
			b.WriteString(" " + strconv.Quote(a))
		}
	}
	if r.Repeat > 0 {
		fmt.Fprintf(&b, " repeat %s", formatWindow(r.Repeat))
	}
	return b.String()
}

// crossed reports whether avg is on the firing side of the threshold.
func (r Rule) crossed(avg float64) bool {
	if r.Below {
		return avg < r.Threshold
	}
	return avg > r.Threshold
}

// remembered is the rule as the memory of notifications knows it.
func (r Rule) remembered() queue.AlertRule {
	return queue.AlertRule{Rule: r.Name, Definition: r.Definition(), Metric: r.Metric, Below: r.Below, Threshold: r.Threshold}
}

// formatNumber prints a figure as short as it reads exactly.
func formatNumber(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// formatWindow prints a duration for a sentence: "5m", "1h30m", "90s".
func formatWindow(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
