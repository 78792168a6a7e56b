"""Writing files atomically: every file the package writes goes through here.

`write_atomic(path, data)` promises:

- A regular file is replaced atomically: the data goes to a temporary file in the same folder,
  is flushed to disk, then renamed over the target. A reader sees the old file or the new one,
  never half of one; a crash or an error (a full disk) leaves the old file as it was.
- A symlink is never replaced: the file it points to is written (atomically, when that is a
  regular file). A special file (a device such as /dev/null, a FIFO, /dev/stdout, a path through
  /proc/self/fd) is never replaced either: it is opened and written directly, as `open()` would.
- An existing file keeps its permission bits (0600 stays 0600) and, where the system allows,
  its owner and group. A new file gets the mode `open()` would give it (0666 minus the umask);
  the umask is never changed, so other threads are not affected.
- A target you could not write is refused with PermissionError naming it: one `os.access` says
  you may not write, or one with no write bit at all (0444), which counts as write-protected even
  for root (`chmod u+w` it first).
- Temporary files are named `.NAME.tmp-PID-RANDOM`; a save removes the ones an earlier, killed
  process (whose PID no longer runs) left beside the same target. `remove_stale_temps(path)`
  does the same on demand.
- Errors name the path you gave, never the temporary file.
"""
from __future__ import annotations

import errno
import os
import secrets
import re
import stat
import sys
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["write_atomic", "remove_stale_temps"]

_MAX_LINKS = 40  # as the kernel's limit on a chain of symbolic links
_STEM = 120  # at most this much of the file name goes into a temporary name (NAME_MAX is 255)
_DESCRIPTOR_LINKS = ("/proc/", "/dev/fd/")  # names of open descriptors, not of files


def _temp_prefix(name: str) -> str:
    return f".{name[:_STEM]}.tmp-"


def _fail(exc: OSError, path: str) -> OSError:
    """The same kind of error, naming the user's path instead of a temporary file."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), path)


# /dev/fd/N, /proc/self/fd/N, /proc/<our pid>/fd/N: one of this process's open descriptors
_OWN_DESCRIPTOR = re.compile(
    r"^/(?:dev/fd|proc/(?:self|thread-self|(\d+))(?:/task/\d+)?/fd)/(\d+)$")


def _resolve(path: str) -> tuple[str, bool]:
    """Follow the chain of symlinks at `path`: (the final name, whether a link on the way named
    an open descriptor (/dev/stdout -> /proc/self/fd/1), which must be written in place). The
    walk stops at a descriptor of this process: what it points to (a pipe, a terminal, a file
    the shell opened) is written through the descriptor itself."""
    p, through_descriptor = path, False
    for _ in range(_MAX_LINKS):
        m = _OWN_DESCRIPTOR.match(os.path.abspath(p))
        if m and (m.group(1) is None or int(m.group(1)) == os.getpid()):
            return p, True
        if not os.path.islink(p):
            return p, through_descriptor
        if os.path.abspath(p).startswith(_DESCRIPTOR_LINKS):  # another process's descriptor
            through_descriptor = True
        p = os.path.join(os.path.dirname(p), os.readlink(p))
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def _write_descriptor(number: int, data: bytes, shown: str) -> None:
    """Write to one of this process's open descriptors where it stands (a pipe, a terminal, or
    the file a shell redirected it to, after what was already written there): never reopened,
    truncated or replaced. Python's own buffered stdout and stderr are flushed first, so their
    text and these bytes arrive in the order they were written."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and stream.fileno() == number:
                stream.flush()
        except (AttributeError, OSError, ValueError):  # no real descriptor (captured, closed)
            pass
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(number, view):]
    except OSError as e:
        raise _fail(e, shown) from None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a number we can ask about: leave it
    except OSError:
        return True
    return True


def remove_stale_temps(path: PathLike) -> list[str]:
    """Remove temporary files that a killed save to `path` left behind; returns their names.

    Only files named like this module's temporaries for `path` whose process is no longer
    running are removed. Every save calls this, so it rarely needs calling by hand.
    """
    final, _ = _resolve(os.fspath(path))
    folder = os.path.dirname(final) or "."
    prefix = _temp_prefix(os.path.basename(final))
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        pid, _, rand = name[len(prefix):].partition("-")
        if not (pid.isdigit() and rand.isalnum()) or _pid_alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(folder, name))
            removed.append(name)
        except OSError:
            pass
    return removed


def _write_in_place(path: str, data: bytes, shown: str) -> None:
    """A device, FIFO or descriptor: open it (never create or replace it) and write."""
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):  # /dev/stdout redirected to a file: as open() does
                os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError as e:
        raise _fail(e, shown) from None


def _check_writable(path: str, st: os.stat_result, shown: str) -> None:
    if st.st_mode & 0o222 == 0:
        raise PermissionError(errno.EACCES, "the file is read-only (no write permission "
                              "for anyone); make it writable first, e.g. chmod u+w", shown)
    if not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), shown)


def _create_temp(folder: str, name: str, mode: int, shown: str) -> tuple[int, str]:
    prefix = _temp_prefix(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = os.path.join(folder, f"{prefix}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise _fail(e, shown) from None


def _sync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: PathLike, data: Union[bytes, str]) -> None:
    """Write `data` (str as UTF-8, or bytes) to `path` so that no reader or crash ever sees half
    a file, without replacing symlinks or special files (see the module docstring)."""
    shown = os.fspath(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(shown, str):
        raise TypeError(f"write_atomic needs a str or os.PathLike path, got "
                        f"{type(shown).__name__}: {shown!r}")
    if shown == "":
        raise FileNotFoundError(errno.ENOENT, "cannot write an empty path", shown)
    try:
        final, through_descriptor = _resolve(shown)
        try:
            st: Optional[os.stat_result] = os.stat(final)
        except FileNotFoundError:
            st = None
    except OSError as e:
        raise _fail(e, shown) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", shown)
    own = _OWN_DESCRIPTOR.match(os.path.abspath(final))
    if own and (own.group(1) is None or int(own.group(1)) == os.getpid()):
        _write_descriptor(int(own.group(2)), data, shown)
        return
    if st is not None and (through_descriptor or not stat.S_ISREG(st.st_mode)):
        _write_in_place(final, data, shown)
        return
    folder = os.path.dirname(os.path.abspath(final))
    name = os.path.basename(final)
    if not name:
        raise IsADirectoryError(errno.EISDIR, "names a folder, not a file", shown)
    if not os.path.isdir(folder):  # say so, rather than name the temporary file in the error
        via = f" (the symlink points to {final!r})" if final != shown else ""
        raise FileNotFoundError(f"cannot write {shown!r}: the folder {folder!r} does not "
                                f"exist{via}")
    if st is not None:
        _check_writable(final, st, shown)
    remove_stale_temps(final)
    # a new file: 0o666, which the kernel reduces by the umask (as open() does); an existing
    # one: created private, then given the old file's bits before any data is written
    fd, tmp = _create_temp(folder, name, 0o666 if st is None else 0o600, shown)
    try:
        try:
            if st is not None:
                _keep_metadata(fd, st)
            with os.fdopen(fd, "wb") as f:
                fd = -1
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except OSError as e:
            raise _fail(e, shown) from None
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _sync_folder(folder)


def _keep_metadata(fd: int, st: os.stat_result) -> None:
    """Owner and group where permitted (root: always; a user: a group they belong to), then the
    permission bits (after chown, which may clear set-id bits)."""
    if hasattr(os, "fchown"):
        for uid, gid in ((st.st_uid, st.st_gid), (-1, st.st_gid)):
            try:
                os.fchown(fd, uid, gid)
                break
            except OSError:
                continue
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
