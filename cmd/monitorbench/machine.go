package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The machine facts in the header come from /proc, as on Linux; elsewhere
// they read "unknown" and the figures still come.

// cpuModel returns the first "model name" of /proc/cpuinfo and the number of
// CPUs the harness can use.
func cpuModel() (string, int) {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return model, runtime.NumCPU()
}

// memTotalMiB returns MemTotal of /proc/meminfo in MiB, 0 when unknown.
func memTotalMiB() int64 {
	kb, _ := procStatusField("/proc/meminfo", "MemTotal")
	return kb / 1024
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() [3]float64 {
	var l [3]float64
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	for i, f := range strings.Fields(string(data)) {
		if i == 3 {
			break
		}
		l[i], _ = strconv.ParseFloat(f, 64)
	}
	return l
}

// procStatusField reads a "Name:   123 kB" line of a /proc file such as
// /proc/<pid>/status or /proc/meminfo and returns the number (kB).
func procStatusField(path, name string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s line", path, name)
}

// filesystemMagic names the file systems a tree is likely to be on, by
// their statfs magic number.
var filesystemMagic = map[int64]string{
	0x01021994: "tmpfs",
	0xef53:     "ext4",
	0x58465342: "xfs",
	0x9123683e: "btrfs",
	0x794c7630: "overlayfs",
	0x6969:     "nfs",
	0x65735546: "fuse",
	0x2fc12fc1: "zfs",
}

// filesystemType names the file system holding path.
func filesystemType(path string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "unknown file system"
	}
	if name, ok := filesystemMagic[int64(st.Type)]; ok {
		return name
	}
	return fmt.Sprintf("file system type %#x", st.Type)
}

// filesystemHeader names the file system holding path for the header: its
// type, and for an ext4 whether it keeps a journal.
func filesystemHeader(path string) string {
	name := filesystemType(path)
	if name == "ext4" {
		name += ext4Journal(path)
	}
	return name
}

// ext4Journal tells whether the ext4 holding path keeps a journal, as
// operators' do: a file system without one (this VM's root) makes metadata
// operations and syncs cheaper than they are in production. It reads the
// journal task's name, <none> without a journal, from /sys/fs/ext4/<device>.
func ext4Journal(path string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return ""
	}
	dev, err := filepath.EvalSymlinks(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return ""
	}
	task, err := os.ReadFile(filepath.Join("/sys/fs/ext4", filepath.Base(dev), "journal_task"))
	switch {
	case err != nil:
		return ""
	case strings.TrimSpace(string(task)) == "<none>":
		return ", NO JOURNAL"
	}
	return ", journaled"
}

// Room a generated tree takes: four inodes a pair (two files, two links)
// and, in the production shape (one or two pairs per webhead directory,
// few pairs per name leaf), up to two directories a pair, and a block for
// the json and the dump's blocks, in 4 KiB pages.
const (
	inodesPerPair = 6
	inodesForDirs = 70_000
	pageSize      = 4096
)

// checkRoom fails when the file system holding dir lacks the inodes or the
// space for pairs more pairs of dumpSize bytes: a tmpfs runs out of inodes
// long before it runs out of memory (Linux gives one an inode per two pages
// of its size by default), and a generation that fails half way wastes
// minutes.
func checkRoom(dir string, pairs, dumpSize int) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // nothing to judge by: let the generation tell
	}
	needInodes := uint64(pairs)*inodesPerPair + inodesForDirs
	needBytes := uint64(pairs) * (pageSize + (uint64(dumpSize)+pageSize-1)/pageSize*pageSize)
	haveBytes := st.Bavail * uint64(st.Bsize)
	if st.Files > 0 && st.Ffree < needInodes || haveBytes < needBytes {
		return fmt.Errorf("%s has room for fewer than %d pairs (%d free inodes, %d MiB free; need about %d and %d MiB): "+
			"give -dir on a file system with more, such as a tmpfs mounted with nr_inodes=0",
			dir, pairs, st.Ffree, haveBytes>>20, needInodes, needBytes>>20)
	}
	return nil
}
