//go:build unix

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// tornSuffix names the file beside the output that keeps the torn last
// lines set aside (FILE.torn).
const tornSuffix = ".torn"

// openAppend opens path for appending, creating it with the mode perm if
// it does not exist. A file it creates gets perm exactly, whatever the
// umask (bits the umask removed are set again); a file that exists keeps
// its mode, which logrotate's create directive may have set. A regular
// file is opened for reading too, where permitted, so that its tail can
// be checked and what was written into it after a deletion copied;
// anything else is opened for writing only, as a FIFO opened for reading
// too would read its own writes.
func openAppend(path string, perm fs.FileMode) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, perm)
		if err == nil {
			if err := f.Chmod(perm); err != nil {
				f.Close()
				return nil, err
			}
			return f, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		mode := os.O_WRONLY
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			mode = os.O_RDWR
		}
		f, err = os.OpenFile(path, mode|os.O_APPEND, 0)
		if mode == os.O_RDWR && errors.Is(err, fs.ErrPermission) {
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		// Removed between the two opens: create it after all.
	}
}

// flock applies flock(2) to f.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = unix.Flock(int(fd), how) }); err != nil {
		return err
	}
	return ferr
}

// mend makes f, just opened, end with a whole line before the output
// appends to it. A last line without its "\n" is a write that a crash (a
// SIGKILL in the middle of a write(2)) or a full disk cut short (issue
// 20); the next record appended to it would be lost to every parser. mend
// moves that fragment, with a "\n", to FILE.torn beside it and cuts it
// from f, and logs it; where it cannot, it ends the fragment with a "\n"
// so that the records after it stay whole (or sets o.unended, for write
// to do it first). It reports whether it set a fragment aside.
//
// Only a regular file is mended. While it mends, it holds an exclusive
// flock, and every logsockd holds a shared one on its output, so that it
// never cuts the tail of a file another logsockd is writing to: that tail
// may be a write in progress, and such a file is left as it is. A writer
// that takes no lock and appends meanwhile is seen by the size changing,
// and the file is then left as it is too (a window of a few system calls
// remains).
func (o *output) mend(f *os.File) bool {
	o.unended = false
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		flock(f, unix.LOCK_SH|unix.LOCK_NB) // a failure changes nothing: the lock only excludes menders
		if fi.Size() > 0 {
			log.Printf("output %s: not checking its last line: another process holds it (%v)", o.path, err)
		}
		return false
	}
	defer flock(f, unix.LOCK_SH) // held until the file is closed
	start, err := tornStart(f, fi.Size(), o.maxLine)
	if err != nil && !errors.Is(err, errNoLine) {
		log.Printf("output %s: checking its last line: %v", o.path, err)
		return false
	}
	if start == fi.Size() {
		return false
	}
	n := fi.Size() - start
	if err == nil {
		if err = o.setAside(f, start, n); err == nil {
			if fi2, err := f.Stat(); err != nil || fi2.Size() != fi.Size() {
				log.Printf("output %s: its last line, %d bytes, is torn, and copied to %s%s, but not cut: something else appends to the file", o.path, n, o.path, tornSuffix)
				return false
			}
			if err = f.Truncate(start); err == nil {
				log.Printf("output %s: set aside a torn last line (%d bytes without a newline: a write cut short by a crash or a full disk) in %s%s", o.path, n, o.path, tornSuffix)
				return true
			}
			err = fmt.Errorf("copied to %s%s, but not cut: %w", o.path, tornSuffix, err)
		}
	}
	// Ended with a "\n", the fragment is a line of its own, and the
	// records after it are whole. On a full disk, the first write to the
	// file ends it (write).
	if _, werr := f.Write([]byte{'\n'}); werr != nil {
		o.unended = true
		log.Printf("output %s: its last line, %d bytes, is torn, and could not be set aside: %v; nor ended with a newline yet: %v", o.path, n, err, werr)
	} else {
		log.Printf("output %s: its last line, %d bytes, is torn, and could not be set aside: %v; ended with a newline", o.path, n, err)
	}
	return false
}

// errNoLine says that the end of a file is no line of a record: it is
// longer than any.
var errNoLine = errors.New("no newline where a record's line would start: not a file of lines")

// tornStart returns the offset just after the last "\n" among the first
// size bytes of f (0 if there is none), or size if f ends with one. It
// looks back at most limit bytes, no record's line being longer, and
// returns errNoLine beyond.
func tornStart(f *os.File, size, limit int64) (int64, error) {
	const block = 64 << 10
	buf := make([]byte, block)
	for end := size; end > 0; {
		if size-end >= limit {
			return 0, fmt.Errorf("its last %d bytes: %w", size-end, errNoLine)
		}
		n := min(end, block)
		b := buf[:n]
		if _, err := f.ReadAt(b, end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

// setAside appends the n bytes of f at off, and a "\n", to FILE.torn,
// and syncs it: it must hold them before they are cut from f.
func (o *output) setAside(f *os.File, off, n int64) error {
	t, err := os.OpenFile(o.path+tornSuffix, os.O_WRONLY|os.O_APPEND|os.O_CREATE, o.perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(t, io.NewSectionReader(f, off, n)); err != nil {
		t.Close()
		return err
	}
	if _, err := t.Write([]byte{'\n'}); err != nil {
		t.Close()
		return err
	}
	if err := t.Sync(); err != nil {
		t.Close()
		return err
	}
	return t.Close()
}

// cutOwn cuts the last n bytes from the output's file: the start of a
// record whose write failed, which is either dropped and counted, or
// written again whole to another file. It does nothing if something was
// appended after that write (the next open of the file sets the fragment
// aside), or if the file is not a regular file.
func (o *output) cutOwn(n int64) {
	if n == 0 || o.path == "" {
		return
	}
	fi, err := o.file.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	// With O_APPEND, the offset is where the last write ended.
	end, err := o.file.Seek(0, io.SeekCurrent)
	if err != nil || end != fi.Size() {
		log.Printf("output %s: the start of a record (%d bytes) stays at its end: something else appended after it", o.name, n)
		return
	}
	if err := o.file.Truncate(end - n); err != nil {
		log.Printf("output %s: cutting the start of a record (%d bytes) from its end: %v", o.name, n, err)
	}
}

// look compares the file that the output writes to with the one its
// path names, as a rotation without SIGHUP or a deletion leaves them
// (issue 20: records went on into a deleted file). It reports whether the
// path names another file now, or none. While they are the same, it
// remembers the file's size: what a deleted file holds beyond it was
// written after the deletion, as far as the output can know.
func (o *output) look() bool {
	fi, err := o.file.Stat()
	if err != nil {
		return false
	}
	pi, err := os.Stat(o.path)
	switch {
	case err == nil && os.SameFile(fi, pi):
		o.linked = fi.Size()
		return false
	case err == nil || errors.Is(err, fs.ErrNotExist):
		return true
	}
	return false // the path cannot be looked up (a directory's permissions): keep the file
}

// salvage copies what the output wrote into old, a regular file that was
// deleted (no link left), since the last look found the path naming it,
// to f: records otherwise lost unseen. It returns the bytes copied.
func (o *output) salvage(old, f *os.File) (int64, error) {
	fi, err := old.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Nlink > 0 || fi.Size() <= o.linked {
		return 0, nil // renamed, not deleted: the records are in it
	}
	return io.Copy(f, io.NewSectionReader(old, o.linked, fi.Size()-o.linked))
}
