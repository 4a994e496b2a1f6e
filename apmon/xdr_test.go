package apmon

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// The vectors below were written by the ApMon Python library itself
// (github.com/MonALISA-CIT/apmon_py, apmon.py at commit 40c8cb9, the
// library's __directSendParams building a datagram for
// sendTimedParameters), run under Python 3.11 with its xdrlib and a socket
// that keeps what it is given; testdata/derive_vectors.py is the script.
// Two things were set there as this package does them: the version string
// (2.2.2-monitor instead of 2.17.02-py), and Python ints sent as XDR int32
// (type 2, as ApMon 2.2 and the C and Java libraries send them; the current
// Python library sends its ints as doubles).

// pythonVector is sendTimedParameters("Socorro_Monitor", "node-1",
// 1767225600, [("jobs_queued", 42), ("oldest_queued_job_age_seconds", 12.5),
// ("host", "db")]) to a destination with the password "s3cret", instance id
// 0x12345678, whose previous sequence number was 41.
func pythonVector() []byte {
	b, err := hex.DecodeString(strings.Join([]string{
		// The header, an XDR string: its length (23), "v:2.2.2-monitorp:s3cret",
		// one zero byte to a multiple of four.
		"00000017", "763a322e322e322d6d6f6e69746f72703a733363726574", "00",
		// The instance id, int32 (big-endian, as every XDR integer).
		"12345678",
		// The sequence number: the previous one (41) plus 1.
		"0000002a",
		// The cluster, "Socorro_Monitor": 15 bytes and 1 zero.
		"0000000f", "536f636f72726f5f4d6f6e69746f72", "00",
		// The node, "node-1": 6 bytes and 2 zeros.
		"00000006", "6e6f64652d31", "0000",
		// The parameter count.
		"00000003",
		// "jobs_queued" (11 bytes and 1 zero), type 2 (int32), 42.
		"0000000b", "6a6f62735f717565756564", "00", "00000002", "0000002a",
		// "oldest_queued_job_age_seconds" (29 bytes and 3 zeros), type 5
		// (double), 12.5 in IEEE 754 big-endian.
		"0000001d", "6f6c646573745f7175657565645f6a6f625f6167655f7365636f6e6473", "000000",
		"00000005", "4029000000000000",
		// "host" (4 bytes, no padding), type 0 (string), "db" (2 bytes and
		// 2 zeros).
		"00000004", "686f7374", "00000000", "00000002", "6462", "0000",
		// The time, int32: 1767225600 is 2026-01-01 00:00:00 UTC.
		"6955b900",
	}, ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestEncodeMatchesPythonApMon(t *testing.T) {
	t.Parallel()
	d := Datagram{
		Version: Version, Password: "s3cret", InstanceID: 0x12345678, Seq: 42,
		Cluster: "Socorro_Monitor", Node: "node-1",
		Params: []Param{Int("jobs_queued", 42), Float("oldest_queued_job_age_seconds", 12.5), Text("host", "db")},
		Time:   1767225600,
	}
	want := pythonVector()
	got := d.Encode()
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode:\n got %x\nwant %x", got, want)
	}
	if d.Size() != len(want) {
		t.Errorf("Size = %d, want %d", d.Size(), len(want))
	}
	back, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Errorf("Decode(vector) = %+v\nwant %+v", back, d)
	}
}

// TestSplitMatchesPythonApMon: 120 parameters (param_000 = 0, param_001 =
// 0.5, ...: even ones int32, odd ones double) from "a-rather-long-node-name
// .example.org" in "Socorro_Monitor_Processors", no password, instance id 7,
// the previous sequence number 1999999998, time 1767225601. The Python
// library split them into three datagrams, of the sizes and SHA-256 sums
// below, numbered across the wrap of the sequence.
func TestSplitMatchesPythonApMon(t *testing.T) {
	t.Parallel()
	want := []struct {
		seq  int32
		size int
		sum  string
	}{
		{1999999999, 1436, "cccde5f7b71692a4244ed854a4d2802786df9648364458ef7852382032429ae2"},
		{0, 1440, "f345f32a5ad43f7934ff10f6d8ca2ebe67b826337e7bdadc069315bc9da92b8d"},
		{1, 580, "55d64aa045fc22ca26acc68bae324702a82414c3f8962f48fa5937a405e4ec0c"},
	}
	var params []Param
	for i := range 120 {
		name := fmt.Sprintf("param_%03d", i)
		if i%2 == 1 {
			params = append(params, Float(name, float64(i)*0.5))
		} else {
			params = append(params, Int(name, int64(i)))
		}
	}
	d := Datagram{Version: Version, InstanceID: 7, Cluster: "Socorro_Monitor_Processors", Node: "a-rather-long-node-name.example.org", Time: 1767225601}
	// The Python library fills a datagram up to 1,440 bytes; the monitor
	// stays under that (CONTRACT section 9), one byte short.
	blocks := SplitWithin(d, params, 1440)
	if len(blocks) != len(want) {
		t.Fatalf("SplitWithin made %d blocks, want %d", len(blocks), len(want))
	}
	for _, block := range Split(d, params) {
		if b := (Datagram{Version: d.Version, InstanceID: 7, Cluster: d.Cluster, Node: d.Node, Time: d.Time, Params: block}).Encode(); len(b) >= 1440 {
			t.Errorf("Split made a datagram of %d bytes, want under 1,440", len(b))
		}
	}
	w := &worker{seq: new(atomic.Int32)}
	w.seq.Store(1999999998)
	total := 0
	for i, block := range blocks {
		d.Seq, d.Params = w.nextSeq(), block
		b := d.Encode()
		sum := sha256.Sum256(b)
		if d.Seq != want[i].seq || len(b) != want[i].size || hex.EncodeToString(sum[:]) != want[i].sum {
			t.Errorf("datagram %d: seq %d, %d bytes, sha256 %x; want seq %d, %d bytes, %s",
				i, d.Seq, len(b), sum, want[i].seq, want[i].size, want[i].sum)
		}
		total += len(block)
	}
	if total != len(params) {
		t.Errorf("blocks hold %d parameters, want %d", total, len(params))
	}
}

func TestSplitEdges(t *testing.T) {
	t.Parallel()
	d := Datagram{Version: Version, Cluster: "c", Node: "n"}
	if b := Split(d, nil); b != nil {
		t.Errorf("Split(nothing) = %v, want no block", b)
	}
	huge := Text("huge", strings.Repeat("x", 2000))
	blocks := Split(d, []Param{Int("a", 1), huge, Int("b", 2)})
	if len(blocks) != 3 || blocks[1][0].Name != "huge" {
		t.Errorf("a parameter too large for any datagram gets a block of its own: %v", blocks)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	// The first ApMon versions sent no version: the header is the cluster.
	old := Datagram{Cluster: "c", Node: "n", Params: []Param{Int("x", 1)}}
	b := appendString(nil, "c")
	b = appendString(b, "n")
	b = append(b, 0, 0, 0, 1)
	b = appendString(b, "x")
	b = append(b, 0, 0, 0, 2, 0, 0, 0, 1)
	if got, err := Decode(b); err != nil || !reflect.DeepEqual(got, old) {
		t.Errorf("Decode(versionless) = %+v, %v; want %+v", got, err, old)
	}
	// Before 2.2 no instance id and sequence number follow the header.
	v21 := Datagram{Version: "2.1.0-py", Password: "p", Cluster: "c", Node: "n"}
	b = appendString(nil, v21.Header())
	b = appendString(b, "c")
	b = appendString(b, "n")
	b = append(b, 0, 0, 0, 0)
	if got, err := Decode(b); err != nil || !reflect.DeepEqual(got, v21) {
		t.Errorf("Decode(2.1) = %+v, %v; want %+v", got, err, v21)
	}
	v := pythonVector()
	for _, n := range []int{0, 3, 30, 70, 100, 163} {
		if _, err := Decode(v[:n]); err == nil {
			t.Errorf("Decode of the first %d bytes succeeded", n)
		}
	}
	bad := bytes.Clone(v)
	bad[91] = 9 // jobs_queued's type
	if _, err := Decode(bad); err == nil || !strings.Contains(err.Error(), "unknown type 9") {
		t.Errorf("Decode(unknown type) error = %v", err)
	}
}

func TestInt32Clamps(t *testing.T) {
	t.Parallel()
	if p := Int("n", 1<<40); p.Int != 1<<31-1 {
		t.Errorf("Int(2^40) = %d", p.Int)
	}
	if p := Int("n", -1<<40); p.Int != -1<<31 {
		t.Errorf("Int(-2^40) = %d", p.Int)
	}
}
