// Package apmon speaks ApMon, the UDP protocol by which applications report
// to MonALISA services: datagrams encoded in XDR (RFC 4506) exactly as the
// ApMon libraries (C, C++, Java, Perl, Python) write them, the destinations
// they are sent to (host[:port] [password], or the address of a
// configuration page listing them), the libraries' rule that limits how many
// datagrams a second go to one destination, and a Sender that delivers
// reports to every destination without ever making its caller wait.
//
// A datagram is, in XDR: the header string "v:<version>p:<password>", the
// sender's instance id and the datagram's sequence number (int32 each; a
// service reads them when the version is 2.2 or later), the cluster name,
// the node name, the parameter count (int32), each parameter as its name,
// its type (int32: 0 string, 2 int32, 4 float, 5 double) and its value, and
// the send time (int32, seconds since the epoch).
package apmon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Version is the ApMon version the header announces: 2.2 or later, so that
// a MonALISA service reads the instance id and sequence number after it.
const Version = "2.2.2-monitor"

// MaxDatagram is the largest datagram sent, in bytes: under 1,440 (CONTRACT
// section 9), so that one fits a 1,500-byte Ethernet frame with room for
// tunnel headers. A report that would be larger is split into several
// complete datagrams, as the ApMon libraries split theirs (maxMsgSize).
const MaxDatagram = 1439

// DefaultPort is the port MonALISA services listen on for ApMon.
const DefaultPort = 8884

// Kind is the XDR type code of a parameter's value, as ApMon numbers them.
type Kind int32

// The value types. Real32 is read, never written.
const (
	String Kind = 0
	Int32  Kind = 2
	Real32 Kind = 4
	Double Kind = 5
)

// Param is one named value of a datagram. Build it with Int, Float or Text.
type Param struct {
	Name string
	Kind Kind
	Int  int32   // Int32
	Num  float64 // Double, Real32
	Str  string  // String
}

// Int is an int32 parameter; values outside int32 are clamped to it.
func Int(name string, v int64) Param {
	return Param{Name: name, Kind: Int32, Int: int32(min(max(v, math.MinInt32), math.MaxInt32))}
}

// Float is a double parameter.
func Float(name string, v float64) Param { return Param{Name: name, Kind: Double, Num: v} }

// Text is a string parameter.
func Text(name, v string) Param { return Param{Name: name, Kind: String, Str: v} }

// Value returns the value as text, as the receiver prints it.
func (p Param) Value() string {
	switch p.Kind {
	case Int32:
		return strconv.FormatInt(int64(p.Int), 10)
	case Double, Real32:
		return strconv.FormatFloat(p.Num, 'f', -1, 64)
	default:
		return strconv.Quote(p.Str)
	}
}

// Datagram is one ApMon datagram.
type Datagram struct {
	// Version and Password make the header "v:<Version>p:<Password>".
	Version  string
	Password string
	// InstanceID identifies the sending process; Seq numbers its datagrams
	// to one destination (1, 2, ..., wrapping to 0 after 1,999,999,999).
	InstanceID int32
	Seq        int32
	Cluster    string
	Node       string
	Params     []Param
	// Time is the send time in seconds since the epoch; 0 means none.
	Time int32
}

// Header returns the datagram's header string.
func (d Datagram) Header() string { return "v:" + d.Version + "p:" + d.Password }

// String returns the datagram on one line, as `crashsim apmon-listen`
// prints it: cluster/node, version, password (masked), instance id,
// sequence number, send time (UTC), then each parameter as name=value
// (strings quoted).
func (d Datagram) String() string {
	var b strings.Builder
	pw := "none"
	if d.Password != "" {
		pw = mask
	}
	fmt.Fprintf(&b, "%s/%s v=%s password=%s instance=%d seq=%d", d.Cluster, d.Node, d.Version, pw, d.InstanceID, d.Seq)
	if d.Time != 0 {
		fmt.Fprintf(&b, " time=%s", time.Unix(int64(d.Time), 0).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, " params=%d", len(d.Params))
	for _, p := range d.Params {
		fmt.Fprintf(&b, " %s=%s", p.Name, p.Value())
	}
	return b.String()
}

// Size returns the length of the encoded datagram.
func (d Datagram) Size() int {
	n := d.overhead()
	for _, p := range d.Params {
		n += p.size()
	}
	return n
}

// overhead is the size of everything but the parameters.
func (d Datagram) overhead() int {
	n := stringSize(d.Header()) + 4 + 4 + stringSize(d.Cluster) + stringSize(d.Node) + 4
	if d.Time != 0 {
		n += 4
	}
	return n
}

// size is the encoded size of the parameter.
func (p Param) size() int {
	n := stringSize(p.Name) + 4
	switch p.Kind {
	case Int32, Real32:
		return n + 4
	case Double:
		return n + 8
	default:
		return n + stringSize(p.Str)
	}
}

// stringSize is the size of s as an XDR string: length, bytes, padding to a
// multiple of four.
func stringSize(s string) int { return 4 + (len(s)+3)&^3 }

// Encode returns the datagram in XDR.
func (d Datagram) Encode() []byte {
	b := make([]byte, 0, d.Size())
	b = appendString(b, d.Header())
	b = binary.BigEndian.AppendUint32(b, uint32(d.InstanceID))
	b = binary.BigEndian.AppendUint32(b, uint32(d.Seq))
	b = appendString(b, d.Cluster)
	b = appendString(b, d.Node)
	b = binary.BigEndian.AppendUint32(b, uint32(len(d.Params)))
	for _, p := range d.Params {
		b = appendString(b, p.Name)
		b = binary.BigEndian.AppendUint32(b, uint32(p.Kind))
		switch p.Kind {
		case Int32:
			b = binary.BigEndian.AppendUint32(b, uint32(p.Int))
		case Real32:
			b = binary.BigEndian.AppendUint32(b, math.Float32bits(float32(p.Num)))
		case Double:
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(p.Num))
		default:
			b = appendString(b, p.Str)
		}
	}
	if d.Time != 0 {
		b = binary.BigEndian.AppendUint32(b, uint32(d.Time))
	}
	return b
}

// appendString appends s as an XDR string.
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	b = append(b, s...)
	for range (4 - len(s)%4) % 4 {
		b = append(b, 0)
	}
	return b
}

// Split returns params in blocks, in order, such that a datagram of d's
// header, cluster and node (and a send time) with one block stays within
// MaxDatagram bytes, each block as full as it can be: the way the ApMon
// libraries split a large report. A parameter too large for any datagram
// gets a block of its own. No params, no blocks.
func Split(d Datagram, params []Param) [][]Param { return SplitWithin(d, params, MaxDatagram) }

// SplitWithin is Split with datagrams of at most limit bytes (the Python
// library's maxMsgSize is 1,440, one more than MaxDatagram).
func SplitWithin(d Datagram, params []Param, limit int) [][]Param {
	d.Params, d.Time = nil, 1
	room := limit - d.overhead()
	var blocks [][]Param
	start, used := 0, 0
	for i, p := range params {
		if n := p.size(); used+n > room && i > start {
			blocks = append(blocks, params[start:i])
			start, used = i, n
		} else {
			used += n
		}
	}
	if start < len(params) {
		blocks = append(blocks, params[start:])
	}
	return blocks
}

// Decode reads a datagram as a MonALISA service does: the header, the
// instance id and sequence number when the header's version is 2.2 or later,
// the cluster and node names, the parameters, and the send time when bytes
// remain. A header without "v:" and "p:" is read as the cluster name of the
// first ApMon versions.
func Decode(b []byte) (Datagram, error) {
	r := reader{b: b}
	var d Datagram
	header := r.string()
	vi, pi := strings.Index(header, "v:"), strings.Index(header, "p:")
	versioned := vi == 0 && pi >= 2
	if versioned {
		d.Version, d.Password = header[2:pi], header[pi+2:]
		if major, minor := versionOf(d.Version); major > 2 || major == 2 && minor >= 2 {
			d.InstanceID, d.Seq = r.int32(), r.int32()
		}
		d.Cluster = r.string()
	} else {
		d.Cluster = header
	}
	d.Node = r.string()
	n := r.int32()
	if r.err == nil && (n < 0 || int(n) > len(b)/8) {
		return d, fmt.Errorf("decode ApMon datagram: %d parameters in %d bytes", n, len(b))
	}
	for i := int32(0); i < n && r.err == nil; i++ {
		p := Param{Name: r.string(), Kind: Kind(r.int32())}
		switch p.Kind {
		case String:
			p.Str = r.string()
		case Int32:
			p.Int = r.int32()
		case Real32:
			p.Num = float64(math.Float32frombits(uint32(r.int32())))
		case Double:
			p.Num = math.Float64frombits(r.uint64())
		default:
			if r.err == nil {
				r.err = fmt.Errorf("parameter %q has unknown type %d", p.Name, p.Kind)
			}
		}
		d.Params = append(d.Params, p)
	}
	if r.err == nil && len(r.b)-r.off >= 4 {
		d.Time = r.int32()
	}
	if r.err == nil && r.off != len(r.b) {
		r.err = fmt.Errorf("%d bytes left over", len(r.b)-r.off)
	}
	if r.err != nil {
		return d, fmt.Errorf("decode ApMon datagram: %w", r.err)
	}
	return d, nil
}

// versionOf reads major.minor from a version such as 2.2.2-monitor or
// 2.2.8_cpp, as the service does (-1 when absent).
func versionOf(v string) (major, minor int) {
	v, _, _ = strings.Cut(v, "-")
	v, _, _ = strings.Cut(v, "_")
	parts := strings.Split(v, ".")
	major, minor = -1, -1
	if n, err := strconv.Atoi(parts[0]); err == nil {
		major = n
	}
	if len(parts) > 1 {
		if n, err := strconv.Atoi(parts[1]); err == nil {
			minor = n
		}
	}
	return major, minor
}

// reader reads XDR values; the first error sticks.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = errors.New("datagram ends in the middle of a value")
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) int32() int32 {
	if p := r.take(4); p != nil {
		return int32(binary.BigEndian.Uint32(p))
	}
	return 0
}

func (r *reader) uint64() uint64 {
	if p := r.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (r *reader) string() string {
	n := int(uint32(r.int32()))
	p := r.take((n + 3) &^ 3)
	if p == nil {
		return ""
	}
	return string(p[:n])
}
