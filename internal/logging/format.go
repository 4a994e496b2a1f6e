package logging

import (
	"fmt"
	"regexp"
)

// FormatJSON is the line-format value that selects one JSON object per line.
const FormatJSON = "json"

// placeholder matches a Python logging placeholder such as %(asctime)s.
var placeholder = regexp.MustCompile(`%\(([A-Za-z_]+)\)s`)

// placeholders are the classic placeholders a line format may use.
var placeholders = map[string]bool{
	"asctime":    true,
	"levelname":  true,
	"message":    true,
	"threadName": true,
	"name":       true,
}

// ValidateFormat reports whether format is "json" or a classic line format
// made of the placeholders %(asctime)s, %(levelname)s, %(message)s,
// %(threadName)s and %(name)s and literal text.
func ValidateFormat(format string) error {
	if format == FormatJSON {
		return nil
	}
	if format == "" {
		return fmt.Errorf("empty line format")
	}
	for _, m := range placeholder.FindAllStringSubmatch(format, -1) {
		if !placeholders[m[1]] {
			return fmt.Errorf("unknown placeholder %%(%s)s (known: asctime, levelname, message, threadName, name)", m[1])
		}
	}
	return nil
}
