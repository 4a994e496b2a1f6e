package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/crashmonitor/monitor/apmon"
)

// cmdApMonListen is `crashsim apmon-listen`: a stand-in for a MonALISA
// service that prints each ApMon datagram it receives, decoded, on one line,
// so that an operator sees what the monitor sends before pointing it at
// MonALISA. It runs until SIGTERM or SIGINT, or until -n datagrams came.
func cmdApMonListen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlagSet("apmon-listen", "apmon-listen [-listen HOST:PORT] [-n COUNT]", stderr)
	addr := f.String("listen", fmt.Sprintf("127.0.0.1:%d", apmon.DefaultPort), "UDP address to listen on (port 0: any free one)")
	count := f.Int("n", 0, "exit after this many datagrams (0: run until stopped)")
	if err := parse(f, args); err != nil {
		return err
	}
	conn, err := net.ListenPacket("udp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer conn.Close()
	fmt.Fprintf(stderr, "listening for ApMon datagrams on udp %s\n", conn.LocalAddr())

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		conn.Close() // ends the read below
	}()
	buf := make([]byte, 65536)
	for n := 0; *count == 0 || n < *count; n++ {
		size, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		at := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
		d, err := apmon.Decode(buf[:size])
		if err != nil {
			fmt.Fprintf(stdout, "%s from %s %d bytes: %v\n", at, from, size, err)
			continue
		}
		fmt.Fprintf(stdout, "%s from %s %d bytes: %s\n", at, from, size, d)
	}
	return nil
}
