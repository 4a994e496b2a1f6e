package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/crashmonitor/monitor/apmon"
)

// maxApMonName bounds the cluster and node names, so that a datagram's
// header leaves room for its parameters.
const maxApMonName = 255

// asApMonDestinations is a list of ApMon destinations, "host[:port]
// [password]" or the http(s) URL of a configuration page: a YAML sequence of
// strings, or one string of them separated by commas (the environment's
// form). It prints as the normal forms joined by ", ".
func asApMonDestinations() kind[[]apmon.Destination] {
	return kind[[]apmon.Destination]{
		parse: func(s string) ([]apmon.Destination, error) {
			if strings.TrimSpace(s) == "" {
				return nil, nil
			}
			return parseApMonDestinations(strings.Split(s, ","))
		},
		items:  parseApMonDestinations,
		format: formatApMonDestinations,
	}
}

// parseApMonDestinations reads each entry; a malformed one is named, its
// password masked.
func parseApMonDestinations(entries []string) ([]apmon.Destination, error) {
	var out []apmon.Destination
	var bad []string
	for _, e := range entries {
		d, err := apmon.ParseDestination(e)
		if err != nil {
			fields := strings.Fields(e)
			if len(fields) > 1 {
				fields = append(fields[:1], mask)
			}
			bad = append(bad, fmt.Sprintf("entry %q %v", strings.Join(fields, " "), err))
			continue
		}
		out = append(out, d)
	}
	if len(bad) > 0 {
		return out, errors.New(strings.Join(bad, "; "))
	}
	return out, nil
}

func formatApMonDestinations(ds []apmon.Destination) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ", ")
}

// asApMonCluster is a cluster name: not empty, at most 255 bytes.
func asApMonCluster() kind[string] {
	return kind[string]{parse: func(s string) (string, error) {
		if s == "" {
			return "", errors.New("must not be empty")
		}
		return checkApMonName(s)
	}, format: itself, trim: true}
}

// asApMonNode is a node name; empty is the host's name.
func asApMonNode() kind[string] {
	return kind[string]{parse: func(s string) (string, error) {
		if s == "" {
			h, err := os.Hostname()
			if err != nil || h == "" {
				return "", errors.New("is empty and the host name is unknown: set it")
			}
			return h, nil
		}
		return checkApMonName(s)
	}, format: itself, trim: true}
}

func checkApMonName(s string) (string, error) {
	if len(s) > maxApMonName {
		return s, fmt.Errorf("is longer than %d bytes", maxApMonName)
	}
	return s, nil
}
