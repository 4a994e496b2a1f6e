package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parseFile checks that data is one flat YAML mapping of known keys (exact
// spelling) to scalars (or, for a list key, a sequence of scalars), each key
// at most once. It returns the good keys with their values as the scalar's
// text (a null or empty value is ""; a sequence is a []string), so that
// unquoted 0660 stays "0660" rather than becoming yaml.v3's 432. Problems
// with keys come back in keyErrs; err is for a file that is not YAML at all.
func parseFile(data []byte) (values map[string]any, keyErrs []error, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil // empty file: all defaults
		}
		return nil, nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, nil, err
		}
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		return nil, nil, fmt.Errorf("line %d: a second YAML document; the file must be one mapping", line)
	}
	top := &doc
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil, nil, nil // "---" alone
	}
	if top.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("line %d: the file must be one mapping of key: value", top.Line)
	}

	known := map[string]keySpec{}
	for _, k := range keys {
		known[k.name] = k
	}
	values = map[string]any{}
	firstLine := map[string]int{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		kn, vn := top.Content[i], top.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			keyErrs = append(keyErrs, fmt.Errorf("line %d: a key must be a plain name", kn.Line))
			continue
		}
		key := kn.Value
		fail := func(format string, a ...any) {
			keyErrs = append(keyErrs, &KeyError{Key: key, Err: fmt.Errorf(format, a...)})
		}
		spec, ok := known[key]
		if !ok {
			if s := suggest(key); s != "" {
				fail("unknown key on line %d (did you mean %s?)", kn.Line, s)
			} else {
				fail("unknown key on line %d", kn.Line)
			}
			continue
		}
		if first, dup := firstLine[key]; dup {
			fail("duplicate key on line %d (first on line %d)", kn.Line, first)
			delete(values, key)
			continue
		}
		firstLine[key] = kn.Line
		if vn.Kind == yaml.AliasNode && vn.Alias != nil {
			vn = vn.Alias
		}
		switch {
		case spec.isNode && vn.Kind == yaml.ScalarNode && vn.Tag == "!!null":
			values[key] = ""
		case spec.isNode:
			values[key] = vn // read whole by the key's kind
		case vn.Kind == yaml.MappingNode:
			fail("on line %d is a nested mapping; values must be plain scalars", vn.Line)
		case vn.Kind == yaml.SequenceNode && spec.isList:
			items, err := sequence(vn)
			if err != nil {
				fail("%v", err)
				continue
			}
			values[key] = items
		case vn.Kind == yaml.SequenceNode:
			fail("on line %d is a list; values must be plain scalars", vn.Line)
		case vn.Kind != yaml.ScalarNode:
			fail("on line %d is not a plain scalar", vn.Line)
		case vn.Tag == "!!null":
			values[key] = ""
		default:
			values[key] = vn.Value
		}
	}
	return values, keyErrs, nil
}

// sequence returns the items of a list key's YAML sequence, which must be
// plain scalars (a null item is an empty string).
func sequence(vn *yaml.Node) ([]string, error) {
	items := []string{}
	for _, item := range vn.Content {
		if item.Kind == yaml.AliasNode && item.Alias != nil {
			item = item.Alias
		}
		if item.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("on line %d has an item that is not a plain scalar", item.Line)
		}
		if item.Tag == "!!null" {
			items = append(items, "")
			continue
		}
		items = append(items, item.Value)
	}
	return items, nil
}

// suggest returns the known key closest to an unknown one, or "".
func suggest(unknown string) string {
	best, bestDist := "", 4 // at most three edits away
	for _, k := range keys {
		if strings.EqualFold(k.name, unknown) {
			return k.name
		}
		if d := editDistance(strings.ToLower(unknown), strings.ToLower(k.name)); d < bestDist {
			best, bestDist = k.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
