package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/crashmonitor/monitor/alert"
)

// asAlertRules is alertRules: a YAML sequence of mappings, set in the file
// only (the environment may only empty it). Every problem names the rule
// (by its name, or its position when the name is the problem) and the
// field.
var asAlertRules = kind[[]alert.Rule]{
	parse: func(s string) ([]alert.Rule, error) {
		if strings.TrimSpace(s) != "" {
			return nil, errors.New("is set in the configuration file only, as a list of rules (the environment may only empty it)")
		}
		return nil, nil
	},
	node:   parseAlertRules,
	format: formatAlertRules,
}

// alertFields are a rule's fields, in the order the contract lists them.
var alertFields = []string{"name", "metric", "above", "below", "window", "command", "repeat"}

// parseAlertRules reads the rules of a YAML sequence.
func parseAlertRules(seq *yaml.Node) ([]alert.Rule, error) {
	if seq.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("on line %d must be a list of rules", seq.Line)
	}
	var rules []alert.Rule
	var errs []error
	firstLine := map[string]int{}
	for i, item := range seq.Content {
		if item.Kind == yaml.AliasNode && item.Alias != nil {
			item = item.Alias
		}
		r, err := parseAlertRule(i+1, item)
		first, dup := firstLine[r.Name]
		switch {
		case r.Name != "" && dup:
			errs = append(errs, fmt.Errorf("rule %q (line %d): field name: a rule of this name is already on line %d", r.Name, item.Line, first))
		case r.Name != "":
			firstLine[r.Name] = item.Line
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !dup {
			rules = append(rules, r)
		}
	}
	return rules, errors.Join(errs...)
}

// parseAlertRule reads rule number n of the list.
func parseAlertRule(n int, item *yaml.Node) (alert.Rule, error) {
	r := alert.Rule{Window: alert.DefaultWindow}
	who := fmt.Sprintf("rule %d (line %d)", n, item.Line)
	if item.Kind != yaml.MappingNode {
		return r, fmt.Errorf("%s: must be a mapping of fields (%s)", who, strings.Join(alertFields, ", "))
	}
	fields := map[string]*yaml.Node{}
	var problems []string
	fail := func(field, format string, a ...any) {
		problems = append(problems, "field "+field+": "+fmt.Sprintf(format, a...))
	}
	for i := 0; i+1 < len(item.Content); i += 2 {
		kn, vn := item.Content[i], item.Content[i+1]
		if vn.Kind == yaml.AliasNode && vn.Alias != nil {
			vn = vn.Alias
		}
		switch {
		case !slices.Contains(alertFields, kn.Value):
			fail(kn.Value, "unknown field on line %d (the fields are %s)", kn.Line, strings.Join(alertFields, ", "))
		case fields[kn.Value] != nil:
			fail(kn.Value, "given twice (line %d)", kn.Line)
		default:
			fields[kn.Value] = vn
		}
	}
	// The name first, so that the other problems can name the rule.
	if vn := fields["name"]; vn == nil || scalar(vn) == "" {
		fail("name", "required")
	} else if r.Name = scalar(vn); !alert.ValidName(r.Name) || vn.Kind != yaml.ScalarNode {
		fail("name", "%q is not a name: use letters, digits, _ and -", r.Name)
		r.Name = ""
	}
	if r.Name != "" {
		who = fmt.Sprintf("rule %q (line %d)", r.Name, item.Line)
	}
	switch vn := fields["metric"]; {
	case vn == nil || scalar(vn) == "":
		fail("metric", "required (one of %s)", strings.Join(alert.Metrics(), ", "))
	case !alert.KnownMetric(scalar(vn)):
		fail("metric", "%q is not a metric (one of %s)", scalar(vn), strings.Join(alert.Metrics(), ", "))
	default:
		r.Metric = scalar(vn)
	}
	above, below := fields["above"], fields["below"]
	switch {
	case above != nil && below != nil:
		fail("above", "give either above or below, not both")
	case above == nil && below == nil:
		fail("above", "required: give the threshold as above or below")
	case above != nil:
		r.Threshold = threshold(above, "above", fail)
	default:
		r.Below = true
		r.Threshold = threshold(below, "below", fail)
	}
	if vn := fields["window"]; vn != nil {
		d, err := parseDuration(scalar(vn))
		if err != nil {
			fail("window", "%q %v", scalar(vn), err)
		}
		r.Window = d
	}
	if vn := fields["repeat"]; vn != nil && scalar(vn) != "" {
		d, err := parseDuration(scalar(vn))
		if err != nil {
			fail("repeat", "%q %v", scalar(vn), err)
		}
		r.Repeat = d
	}
	if vn := fields["command"]; vn != nil {
		r.Command = command(vn, fail)
	}
	if len(problems) > 0 {
		return r, fmt.Errorf("%s: %s", who, strings.Join(problems, "; "))
	}
	return r, nil
}

// threshold reads the number of field above or below.
func threshold(vn *yaml.Node, field string, fail func(field, format string, a ...any)) float64 {
	v, err := strconv.ParseFloat(scalar(vn), 64)
	if err != nil || vn.Kind != yaml.ScalarNode || math.IsNaN(v) || math.IsInf(v, 0) {
		fail(field, "%q is not a number", scalar(vn))
		return 0
	}
	return v
}

// command reads the command's list: the program, then its arguments.
func command(vn *yaml.Node, fail func(field, format string, a ...any)) []string {
	if vn.Kind != yaml.SequenceNode {
		fail("command", "must be a list: the program, then its arguments (it runs without a shell)")
		return nil
	}
	if len(vn.Content) == 0 {
		fail("command", "is an empty list; leave it out to log notices only")
		return nil
	}
	argv := make([]string, 0, len(vn.Content))
	for _, a := range vn.Content {
		if a.Kind != yaml.ScalarNode {
			fail("command", "item on line %d is not a plain string", a.Line)
			return nil
		}
		argv = append(argv, a.Value)
	}
	if argv[0] == "" {
		fail("command", "the program (the first item) is empty")
		return nil
	}
	return argv
}

// scalar is a node's text, or "" for a node that is not a scalar.
func scalar(vn *yaml.Node) string {
	if vn.Kind != yaml.ScalarNode || vn.Tag == "!!null" {
		return ""
	}
	return vn.Value
}

// formatAlertRules prints the rules, "name: definition" each, separated by
// "; ".
func formatAlertRules(rules []alert.Rule) string {
	s := make([]string, len(rules))
	for i, r := range rules {
		s[i] = r.Name + ": " + r.Definition()
	}
	return strings.Join(s, "; ")
}
