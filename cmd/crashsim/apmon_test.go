package main

import (
	"net"
	"strings"
	"testing"

	"github.com/crashmonitor/monitor/apmon"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// TestApMonListen: the listener prints each datagram on a line of its own,
// decoded, its password masked; a datagram it cannot read is said so.
func TestApMonListen(t *testing.T) {
	t.Parallel()
	var out, errOut testkit.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(t.Context(), []string{"apmon-listen", "-listen", "127.0.0.1:0", "-n", "2"}, &out, &errOut)
	}()
	const mark = "listening for ApMon datagrams on udp "
	testkit.Eventually(t, "the listener to start", func() bool { return strings.Contains(errOut.String(), mark) })
	addr := strings.TrimSpace(strings.TrimPrefix(errOut.String(), mark))
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d := apmon.Datagram{Version: apmon.Version, Password: "hunter2", InstanceID: 77, Seq: 1, Cluster: "Socorro_Monitor", Node: "node-1",
		Params: []apmon.Param{apmon.Int("jobs_queued", 5), apmon.Float("queued_per_second", 2.5), apmon.Text("note", "a b")}, Time: 1767225600}
	conn.Write(d.Encode())
	conn.Write([]byte{0, 0, 0, 9, 'x'})
	if code := <-done; code != 0 {
		t.Fatalf("apmon-listen exited %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out.String())
	}
	want := "bytes: Socorro_Monitor/node-1 v=2.2.2-monitor password=********** instance=77 seq=1 time=2026-01-01T00:00:00Z params=3 jobs_queued=5 queued_per_second=2.5 note=\"a b\""
	if !strings.HasSuffix(lines[0], want) {
		t.Errorf("line %q\ndoes not end with %q", lines[0], want)
	}
	if !strings.Contains(lines[1], "decode ApMon datagram") || strings.Contains(out.String(), "hunter2") {
		t.Errorf("output:\n%s", out.String())
	}
}
