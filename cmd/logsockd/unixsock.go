//go:build unix

package main

// The Unix sockets' files: a stale one is replaced, a live one or a file
// that is not a socket is refused and left alone, -mode applies from the
// bind, and the file goes at exit unless another has taken the path.

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// modeFlag is the -mode flag: permission bits, or unset.
type modeFlag struct {
	perm fs.FileMode
	set  bool
}

func (m *modeFlag) String() string {
	if m == nil || !m.set {
		return ""
	}
	return fmt.Sprintf("%04o", uint32(m.perm))
}

func (m *modeFlag) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || n&^0o777 != 0 {
		return errors.New("want permission bits in octal, such as 0660")
	}
	m.perm, m.set = fs.FileMode(n), true
	return nil
}

// listenUnix listens on a Unix socket at path, after removing a stale
// socket file there, with the permissions perm if it is not nil. It leaves
// the file to the caller: the listener does not remove it on Close.
func listenUnix(path string, perm *fs.FileMode) (*net.UnixListener, *socketFile, error) {
	if err := removeStale(path); err != nil {
		return nil, nil, err
	}
	addr := &net.UnixAddr{Name: path, Net: "unix"}
	var l *net.UnixListener
	var err error
	if perm == nil {
		l, err = net.ListenUnix("unix", addr)
	} else {
		// bind(2) creates the file with mode 0777 &^ umask, so a umask set
		// around it gives the file its mode from the start, where a chmod
		// after bind would leave it open to connect in between, and a bind
		// to a temporary name renamed into place would replace whatever
		// took the path meanwhile, a live socket included. systemd's
		// socket units set the umask too. The umask is the process's, which
		// is safe here: nothing else of ours creates files yet.
		old := syscall.Umask(int(0o777 &^ *perm))
		l, err = net.ListenUnix("unix", addr)
		syscall.Umask(old)
	}
	if err != nil {
		return nil, nil, err
	}
	// Close would unlink the path whatever it names by then, another
	// collector's socket included: socketFile.remove checks first.
	l.SetUnlinkOnClose(false)
	fi, err := os.Lstat(path)
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	// A socket that took the path between bind and Lstat would pass for
	// ours: no system call names the file that a socket is bound to.
	f := &socketFile{path: path, fi: fi}
	if fi.Mode().Type() != fs.ModeSocket {
		// Replaced between bind and Lstat: not ours, and not to remove.
		l.Close()
		return nil, nil, fmt.Errorf("%s: replaced by %s as the collector listened", path, describe(fi))
	}
	if perm != nil && fi.Mode().Perm() != *perm {
		// A default ACL on the directory takes the umask's place.
		f.remove()
		l.Close()
		return nil, nil, fmt.Errorf("%s: created with mode %04o, want %04o (a default ACL on the directory?)",
			path, uint32(fi.Mode().Perm()), uint32(*perm))
	}
	return l, f, nil
}

// removeStale removes the file at path if it is a stale socket, one that
// nobody accepts on, as a collector killed by SIGKILL leaves it. It returns
// an error, and removes nothing, if a process accepts on the socket, if the
// file is not a socket, or if it cannot tell.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s is %s, not a socket: not removing it", path, describe(fi))
	}
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err == nil {
		c.Close() // the collector there logs a connection of 0 frames
		return fmt.Errorf("%s is already in use by a running collector", path)
	}
	// Only a refusal means that nobody listens. A live listener whose
	// queue is full answers EAGAIN, and a datagram socket EPROTOTYPE.
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: cannot tell whether the socket is stale: %w", path, err)
	}
	// Remove the file only if it is still the one that refused. A window
	// remains between this Lstat and the unlink, as no system call unlinks
	// a path only if it names a given inode: a second collector that
	// replaced the stale socket in between would lose its file (it keeps
	// listening, but unreachable). Only a lock beside the socket would
	// close that window.
	again, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// Nothing pins the stale file's inode, and its number can pass to a
	// new file at once: the time tells them apart.
	if !os.SameFile(fi, again) || !fi.ModTime().Equal(again.ModTime()) {
		return fmt.Errorf("%s changed while the collector checked whether it was stale", path)
	}
	// syscall.Unlink, not os.Remove, which would remove a directory too.
	if err := syscall.Unlink(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &fs.PathError{Op: "unlink", Path: path, Err: err}
	}
	log.Printf("removed stale socket %s", path)
	return nil
}

// describe says what kind of file fi is, for an error message.
func describe(fi fs.FileInfo) string {
	switch t := fi.Mode().Type(); {
	case t.IsRegular():
		return "a regular file"
	case t.IsDir():
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	default:
		return fmt.Sprintf("a file of type %v", t)
	}
}

// socketFile is a socket file that the collector created, as Lstat saw it
// just after the bind.
type socketFile struct {
	path    string
	fi      fs.FileInfo
	removed bool
}

// remove unlinks the file once, if the path still names it: another
// collector may have taken the path since (after someone removed the
// file), and its socket must stay.
func (f *socketFile) remove() {
	if f.removed {
		return
	}
	f.removed = true
	fi, err := os.Lstat(f.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		log.Printf("not removing %s: %v", f.path, err)
		return
	case !os.SameFile(f.fi, fi):
		log.Printf("not removing %s: it is no longer the socket this collector created", f.path)
		return
	}
	// The same window as in removeStale, between Lstat and unlink.
	if err := syscall.Unlink(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Printf("removing %s: %v", f.path, err)
	}
}
