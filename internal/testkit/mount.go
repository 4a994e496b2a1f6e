package testkit

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Real file-system faults for the tests of storage faults: small tmpfs
// mounts to fill, remount read-only, make immutable or unmount under the
// monitor, and mounts whose server is gone. They need root (mount(2),
// FS_IOC_SETFLAGS); as another user the test is skipped, and under CI=true,
// which runs as root, it fails instead.

// RequireRoot skips the test unless it runs as root (fails under CI=true).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test makes real file-system faults (mounts, immutable flags) and needs root (CI=true)")
	}
	t.Skip("this test makes real file-system faults (mounts, immutable flags) and needs root")
}

// MountTmpfs mounts a tmpfs with the mount options opts (e.g.
// "size=1m,nr_inodes=200") on the directory dir, made if missing; it is
// unmounted (lazily) at cleanup.
func MountTmpfs(t testing.TB, dir, opts string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mount(t, "tmpfs", dir, "tmpfs", 0, opts)
}

// BindMount mounts the directory src on dir, made if missing; it is
// unmounted (lazily) at cleanup.
func BindMount(t testing.TB, src, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mount(t, src, dir, "", unix.MS_BIND, "")
}

// DeadMount mounts on dir a FUSE file system whose server is gone before it
// answered: every access to dir fails with ENOTCONN ("transport endpoint is
// not connected"), as under a crashed network or FUSE file system, even for
// root. dir is made if missing; the mount is removed (lazily) at cleanup.
func DeadMount(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no FUSE here (%v): cannot make a dead mount", err)
	}
	mount(t, "monitor-test-dead", dir, "fuse", unix.MS_NOSUID|unix.MS_NODEV,
		fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd))
	if err := unix.Close(fd); err != nil {
		t.Fatal(err)
	}
}

// Remount changes the options of the mount on dir: "size=64m" grows a
// tmpfs, "ro" makes it read-only, "rw" writable again.
func Remount(t testing.TB, dir, opts string) {
	t.Helper()
	flags := uintptr(unix.MS_REMOUNT)
	if opts == "ro" {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("", dir, "", flags, opts); err != nil {
		t.Fatalf("remount %s %s: %v", dir, opts, err)
	}
}

// Unmount detaches the mount on dir now (umount -l): what has it open keeps
// it, the path shows the directory under it at once.
func Unmount(t testing.TB, dir string) {
	t.Helper()
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		t.Fatalf("umount -l %s: %v", dir, err)
	}
}

// Immutable sets or clears the immutable flag of path (chattr +i, -i): even
// root then may not create, remove or rename anything in a directory (EPERM).
// The flag is cleared at cleanup.
func Immutable(t testing.TB, path string, on bool) {
	t.Helper()
	if err := setImmutable(path, on); err != nil {
		t.Fatalf("chattr %v %s: %v", on, path, err)
	}
	if on {
		t.Cleanup(func() { _ = setImmutable(path, false) })
	}
}

// fsImmutable is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutable = 0x10

func setImmutable(path string, on bool) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if on {
		flags |= fsImmutable
	} else {
		flags &^= fsImmutable
	}
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags))
}

// Fill takes all the free space of the file system holding dir with a file
// there (name), so that the next write fails with ENOSPC; removing the file
// or growing the file system frees it.
func Fill(t testing.TB, dir, name string) {
	t.Helper()
	f, err := os.Create(dir + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		_, err := f.Write(chunk)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// A page may be left that a smaller write still fits in.
	for {
		if _, err := f.Write(chunk[:512]); err != nil {
			break
		}
	}
}

// mount mounts and registers the lazy unmount at cleanup.
func mount(t testing.TB, source, dir, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := unix.Mount(source, dir, fstype, flags, data); err != nil {
		t.Fatalf("mount %s on %s: %v", source, dir, err)
	}
	t.Cleanup(func() {
		// Anything still mounted there (a test may have mounted again).
		for unix.Unmount(dir, unix.MNT_DETACH) == nil {
		}
	})
}
