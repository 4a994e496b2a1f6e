package testkit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/crashmonitor/monitor/queue"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Cluster is a PostgreSQL server of a test's own, which the test may stop
// and start again (an outage, a restart) without disturbing the other
// tests' server. It runs from the system's server binaries (Debian's
// /usr/lib/postgresql/<version>/bin), as the postgres user when the test
// runs as root (initdb refuses root), on a free loopback port, without
// durability (a throwaway cluster). It is stopped and removed at cleanup.
type Cluster struct {
	bin, dir, data string
	port           int
	asPostgres     bool
}

// NewCluster initialises and starts a cluster. Without the server binaries
// the test is skipped, or fails under CI=true.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := serverBinaries()
	if err != nil {
		missing(t, "a private PostgreSQL cluster", err)
	}
	dir, err := os.MkdirTemp("", "monitor-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{bin: bin, dir: dir, data: filepath.Join(dir, "data"), port: freePort(t), asPostgres: os.Geteuid() == 0}
	t.Cleanup(func() {
		_ = c.pgctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if c.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("a private PostgreSQL cluster runs as the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := c.run(filepath.Join(bin, "initdb"), "-D", c.data, "-A", "trust", "-U", "postgres", "-E", "UTF8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.Start(t)
	return c
}

// URL is the cluster's database URL (database postgres).
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off", c.port, c.dir)
	if out, err := c.runOut("pg_ctl", "-D", c.data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		t.Fatalf("start the cluster: %v\n%s\n%s", err, out, log)
	}
}

// Stop stops the server in mode "fast" (clients disconnected, a clean
// shutdown) or "immediate" (as a crash), and waits for it to be gone.
func (c *Cluster) Stop(t testing.TB, mode string) {
	t.Helper()
	if err := c.pgctl("stop", "-m", mode); err != nil {
		t.Fatalf("stop the cluster (%s): %v", mode, err)
	}
}

// Migrated returns a pool on the cluster with the monitor's schema applied,
// closed at cleanup.
func (c *Cluster) Migrated(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), c.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, _, err := queue.Migrate(t.Context(), pool); err != nil {
		t.Fatalf("migrate the cluster: %v", err)
	}
	return pool
}

func (c *Cluster) pgctl(args ...string) error {
	out, err := c.runOut("pg_ctl", append([]string{"-D", c.data, "-w", "-t", "60"}, args...)...)
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func (c *Cluster) runOut(tool string, args ...string) (string, error) {
	return c.run(filepath.Join(c.bin, tool), args...)
}

// run runs a server binary, as postgres when the test is root, from the
// cluster's directory.
func (c *Cluster) run(bin string, args ...string) (string, error) {
	var cmd *exec.Cmd
	if c.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Dir = c.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// serverBinaries finds the directory holding initdb and pg_ctl: PATH, else
// the newest /usr/lib/postgresql/*/bin.
func serverBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(strings.Split(a, "/")[4])
		vb, _ := strconv.Atoi(strings.Split(b, "/")[4])
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("no initdb and pg_ctl found (install postgresql)")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// missing ends a test that needs what could not be found: it fails under
// CI=true (the test scripts install what the tests need), else skips.
func missing(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v (CI=true: make test installs it)", what, err)
	}
	t.Skipf("%s: %v", what, err)
}
