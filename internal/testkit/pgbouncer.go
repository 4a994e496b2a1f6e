package testkit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PgBouncer is a PgBouncer of a test's own in front of a Cluster, in
// transaction pooling mode, as operators run it before version 1.21 (or
// without max_prepared_statements): each transaction gets any server
// connection, and nothing of a session (prepared statements, settings,
// LISTEN, advisory locks) outlives its transaction. It runs from the
// system's pgbouncer (Debian's package), as the postgres user when the test
// runs as root (PgBouncer refuses root), on a free loopback port, and is
// stopped at cleanup.
type PgBouncer struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// PgBouncerPoolSize is how many server connections the pooler opens for
// its database "postgres": fewer than a monitor's pool, so that its
// connections really are shared. Its database "control" has one.
const PgBouncerPoolSize = 3

// NewPgBouncer starts a PgBouncer in front of c. Its database "postgres" is
// c's; so is "control", with a single server connection. Without pgbouncer
// the test is skipped, or fails under CI=true (make test installs it).
func NewPgBouncer(t testing.TB, c *Cluster) *PgBouncer {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin = "/usr/sbin/pgbouncer" // Debian's, off a non-root PATH
		if _, serr := os.Stat(bin); serr != nil {
			missing(t, "pgbouncer (Debian's pgbouncer; scripts/ensure-pgbouncer.sh installs it)", err)
		}
	}
	dir, err := os.MkdirTemp("", "monitor-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	b := &PgBouncer{dir: dir, port: freePort(t), done: make(chan struct{})}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ini := fmt.Sprintf(`[databases]
postgres = host=127.0.0.1 port=%[1]d dbname=postgres
control = host=127.0.0.1 port=%[1]d dbname=postgres pool_size=1

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[2]d
unix_socket_dir = %[3]s
auth_type = trust
auth_file = %[3]s/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = %[4]d
max_client_conn = 200
logfile = %[3]s/pgbouncer.log
pidfile = %[3]s/pgbouncer.pid
`, c.port, b.port, dir, PgBouncerPoolSize)
	files := map[string]string{"pgbouncer.ini": ini, "userlist.txt": `"postgres" ""` + "\n"}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.cmd = exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	b.cmd.Dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgbouncer runs as the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{dir, filepath.Join(dir, "pgbouncer.ini"), filepath.Join(dir, "userlist.txt")} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		// Itself, not through runuser: the process killed at cleanup must
		// be PgBouncer's.
		b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	// A file rather than a pipe: nothing waits for the output to end.
	out, err := os.Create(filepath.Join(dir, "pgbouncer.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	b.cmd.Stdout, b.cmd.Stderr = out, out
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	go func() {
		b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.done
	})
	ready := poll(t, WaitTimeout(), PollInterval, b.done, func() bool {
		conn, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
	if !ready {
		output, _ := os.ReadFile(out.Name())
		t.Fatalf("pgbouncer did not listen on %s:\n%s\n%s", b.Addr(), output, b.Log())
	}
	return b
}

// Addr is the pooler's address.
func (b *PgBouncer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// URL is the URL of database through the pooler ("postgres", or "control").
func (b *PgBouncer) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", b.Addr(), database)
}

// Log is the pooler's log so far.
func (b *PgBouncer) Log() string {
	data, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
	return string(data)
}
