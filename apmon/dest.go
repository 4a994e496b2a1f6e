package apmon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Destination is an entry of the destination list: a MonALISA service
// (Host, Port, Password) or, when URL is set, a configuration page in the
// ApMon format that lists services.
type Destination struct {
	Host     string
	Port     int
	Password string
	URL      string
}

// mask replaces passwords in printed destinations.
const mask = "**********"

// maxPassword bounds a password, so that a datagram's header leaves room
// for its parameters.
const maxPassword = 255

// ParseDestination reads "host[:port] [password]" as the ApMon libraries
// do (port 8884 when left out; an IPv6 address in brackets), or an http://
// or https:// URL naming a configuration page. A password may not hold a
// comma, which separates destinations in the one-string form, nor a space.
func ParseDestination(s string) (Destination, error) {
	s = strings.TrimSpace(s)
	if IsPage(s) {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || strings.ContainsAny(s, ", \t") {
			return Destination{}, errors.New("is not a usable http(s) URL of a configuration page")
		}
		return Destination{URL: s}, nil
	}
	fields := strings.Fields(s)
	switch {
	case len(fields) == 0:
		return Destination{}, errors.New("is empty")
	case len(fields) > 2:
		return Destination{}, errors.New("has more than host[:port] and a password (a password holds no space)")
	}
	d := Destination{Port: DefaultPort}
	if len(fields) == 2 {
		d.Password = fields[1]
		switch {
		case strings.Contains(d.Password, ","):
			return Destination{}, errors.New("has a comma in its password")
		case len(d.Password) > maxPassword:
			return Destination{}, fmt.Errorf("has a password longer than %d bytes", maxPassword)
		}
	}
	hostPort := fields[0]
	port, hasPort := "", false
	switch {
	case strings.HasPrefix(hostPort, "["):
		end := strings.Index(hostPort, "]")
		if end < 0 || (end+1 < len(hostPort) && hostPort[end+1] != ':') {
			return Destination{}, errors.New("has a malformed [IPv6 address]:port")
		}
		d.Host = hostPort[1:end]
		if end+1 < len(hostPort) {
			port, hasPort = hostPort[end+2:], true
		}
	default:
		d.Host, port, hasPort = strings.Cut(hostPort, ":")
	}
	if d.Host == "" || strings.ContainsAny(d.Host, "/,[]@") {
		return Destination{}, errors.New("is not host[:port] [password]: bad host")
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.Trim(port, "0123456789") != "" {
			return Destination{}, fmt.Errorf("has a bad port %q (want 1..65535)", port)
		}
		d.Port = n
	}
	return d, nil
}

// IsPage reports whether an entry names a configuration page.
func IsPage(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// String returns the entry in its normal form: "host:port", followed by a
// space and the password when there is one; or the page's URL.
func (d Destination) String() string {
	if d.URL != "" {
		return d.URL
	}
	s := d.Address()
	if d.Password != "" {
		s += " " + d.Password
	}
	return s
}

// Address returns "host:port" (an IPv6 host in brackets).
func (d Destination) Address() string {
	return net.JoinHostPort(d.Host, strconv.Itoa(d.Port))
}

// Masked returns String with the password (a page URL's too) replaced by
// **********.
func (d Destination) Masked() string {
	if d.URL != "" {
		u, err := url.Parse(d.URL)
		if err != nil || u.User == nil {
			return d.URL
		}
		if _, ok := u.User.Password(); ok {
			name := u.User.Username()
			u.User = url.UserPassword(name, mask)
			// String escapes the mask's stars; show them plainly.
			return strings.Replace(u.String(), u.User.String(), url.User(name).String()+":"+mask, 1)
		}
		return d.URL
	}
	if d.Password == "" {
		return d.Address()
	}
	return d.Address() + " " + mask
}

// MaskList masks every password in a list printed as destinations joined by
// ", " (a malformed entry is masked whole).
func MaskList(printed string) string {
	if strings.TrimSpace(printed) == "" {
		return printed
	}
	parts := strings.Split(printed, ",")
	for i, p := range parts {
		d, err := ParseDestination(p)
		if err != nil {
			parts[i] = mask
			continue
		}
		parts[i] = d.Masked()
	}
	return strings.Join(parts, ", ")
}

// ParsePage reads a configuration page in the ApMon format: one
// destination a line, blank lines and lines starting with # skipped, and
// xApMon_ option lines ignored. Lines that are not destinations (a URL among
// them: pages do not nest) come back in bad, quoted with passwords masked.
func ParsePage(r io.Reader) (dests []Destination, bad []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "xApMon_") {
			continue
		}
		d, perr := ParseDestination(line)
		if perr != nil || d.URL != "" {
			fields := strings.Fields(line)
			if len(fields) > 1 {
				fields = append(fields[:1], mask)
			}
			bad = append(bad, strings.Join(fields, " "))
			continue
		}
		dests = append(dests, d)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read ApMon configuration page: %w", err)
	}
	return dests, bad, nil
}
