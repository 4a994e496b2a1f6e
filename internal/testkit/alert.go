package testkit

import (
	_ "embed"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

//go:embed record.sh
var recordScript []byte

// AlertRecorder writes, in a temporary directory, the command the tests give
// their alert rules, and returns its path. Run as `record.sh OUT ARG...`, it
// appends to OUT one block: the MONITOR_ALERT_* environment, every argument
// as received ("arg=..." lines), and MONITOR_DATABASEPASSWORD ("secret=",
// "none" when unset).
func AlertRecorder(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "record.sh")
	if err := os.WriteFile(path, recordScript, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// AlertCalls returns the blocks an AlertRecorder wrote to out, oldest first
// (none when out does not exist).
func AlertCalls(t testing.TB, out string) []string {
	t.Helper()
	b, err := os.ReadFile(out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, c := range strings.Split(string(b), "call\n") {
		if c != "" {
			calls = append(calls, c)
		}
	}
	return calls
}

// HangingCommand is an alert command that hangs: a shell whose child, in
// its process group, sleeps for minutes after writing its pid to pidFile.
func HangingCommand(pidFile string) []string {
	return []string{"/bin/sh", "-c", "sleep 300 & echo $! >" + pidFile + "; wait"}
}

// WaitChildGone waits until the process whose pid HangingCommand wrote to
// pidFile is gone (or a zombie): its process group was killed.
func WaitChildGone(t testing.TB, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	stat := "/proc/" + strings.TrimSpace(string(b)) + "/stat"
	Eventually(t, "the command's child to die with it (its process group killed)", func() bool {
		s, err := os.ReadFile(stat)
		return err != nil || strings.Contains(string(s), ") Z ")
	})
}
