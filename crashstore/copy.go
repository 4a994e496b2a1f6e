package crashstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The copy path of ArchivePair, across file systems: a durable copy through a
// temporary file of the attempt's own, then a rename into place.

// copyFile copies the regular file src (stat fi) to dst through a temporary
// file in dst's directory: written, given the archive's mode and group and
// src's modification time, fsynced, then renamed into place. The caller
// fsyncs the directory and removes src.
//
// The temporary file's name (.<name>.<tag>.tmp) is this call's own, so that
// two attempts at one pair (two monitors around a change of the active one)
// never write into the same file; once the copy is in place, the temporary
// files that interrupted attempts left beside it are removed.
func (s *Store) copyFile(src, dst string, fi fs.FileInfo) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := join(filepath.Dir(dst), fmt.Sprintf(".%s.%s-%d.tmp", filepath.Base(dst), s.tmpTag, s.tmpSeq.Add(1)))
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, s.filePerm)
	if errors.Is(err, fs.ErrNotExist) {
		if err = s.mkdirs(filepath.Dir(dst)); err != nil {
			return err
		}
		out, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, s.filePerm)
	}
	if err != nil {
		return creating(err)
	}
	defer func() {
		if out != nil {
			_ = out.Close()
		}
		if err != nil {
			_ = unlink(tmp)
		}
	}()
	if err = out.Chmod(s.filePerm); err != nil {
		return err
	}
	if s.gid > 0 {
		if err = out.Chown(-1, s.gid); err != nil {
			return err
		}
	}
	n, err := io.Copy(out, in)
	if err != nil {
		return err
	}
	if n != fi.Size() {
		return fmt.Errorf("copy %s: copied %d bytes, the file has %d: it changed while being archived", src, n, fi.Size())
	}
	if err = out.Sync(); err != nil {
		return err
	}
	err = out.Close()
	out = nil
	if err != nil {
		return err
	}
	mtime := fi.ModTime()
	if err = os.Chtimes(tmp, mtime, mtime); err != nil {
		return err
	}
	if err = rename(tmp, dst); err != nil {
		return err
	}
	removeLeftovers(dst)
	return nil
}

// removeLeftovers removes the temporary files that interrupted copies to dst
// left beside it (.<name>.tmp, .<name>.<tag>.tmp). It is tidying: a file it
// cannot remove stays for the next copy to try.
func removeLeftovers(dst string) {
	dir, base := filepath.Dir(dst), filepath.Base(dst)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "."+base+".") && strings.HasSuffix(n, ".tmp") && e.Type().IsRegular() {
			_ = unlink(join(dir, n))
		}
	}
}

// creating is the error of opening a file to create it: it says "create",
// so that a refusal is known to be one to write.
func creating(err error) error {
	if pe, ok := err.(*fs.PathError); ok && pe.Op == "open" {
		pe.Op = "create"
	}
	return err
}

// rename renames a file, retrying an interrupted call.
func rename(from, to string) error {
	if err := ignoreInterrupt(func() error { return syscall.Rename(from, to) }); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// syncDir makes the entries of directory dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
