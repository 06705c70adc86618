"""The run lock (one run per ledger at a time) and a run's WAL checkpoints."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import LedgerError, LockedError
from .common import Part, iso, now, readonly_message
from .kv import KeyValue

#: Descriptors of ledger files opened for the run lock, by (device, inode), kept open for
#: the life of the process and reused: closing *any* descriptor of a file drops every
#: POSIX lock this process holds on it, SQLite's own included
#: (https://sqlite.org/howtocorrupt.html, section 2.2), so they are never closed.
_SPARE_FDS: dict[tuple[int, int], list[int]] = {}
_SPARE_FDS_LOCK = threading.Lock()


def _take_fd(path: Path) -> int:
    """A read-only descriptor of the ledger file itself (symlinks followed)."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino)
    with _SPARE_FDS_LOCK:
        spare = _SPARE_FDS.get(key, [])
        while spare:
            fd = spare.pop()
            got = os.fstat(fd)
            # A deleted file's inode number can come back for a new file: not this one.
            if (got.st_dev, got.st_ino) == key and got.st_nlink > 0:
                return fd
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cannot_lock(path: Path, e: OSError) -> LedgerError:
    return LedgerError(
        f"cannot lock the ledger {path} ({e.strerror or e}); keep it on a local file system"
    )


def _give_back_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    got = os.fstat(fd)
    with _SPARE_FDS_LOCK:
        _SPARE_FDS.setdefault((got.st_dev, got.st_ino), []).append(fd)


class RunLock(KeyValue, Part):
    """The run lock is an exclusive ``flock`` on the database file itself, so every path
    that names the file (a symlink, a hard link, ``..``, a bind mount) meets the same
    lock, and the kernel drops it when the process ends, even by ``kill -9``.  A
    process that claims deliveries without the run lock holds it shared: such
    processes never take each other's claims, and a run cannot start beside them.
    """

    _lock_fd: int | None = None
    _lock_kind: int | None = None  # fcntl.LOCK_EX (the run lock) or LOCK_SH

    def must_write(self, what: str = "this command") -> None:
        """Raise the one-line LedgerError of a read-only ledger."""
        if self.readonly:
            raise LedgerError(readonly_message(self.path, what))

    def _file_backed(self) -> bool:
        return str(self.path) != ":memory:"

    def lock(self) -> None:
        """Take the run lock: one run at a time per ledger file.  Released at exit, even a kill."""
        self.must_write()
        if not self._file_backed() or self._lock_kind == fcntl.LOCK_EX:
            return
        self.unlock()  # a shared hold of ours would block the exclusive one
        fd = _take_fd(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _give_back_fd(fd)
            raise LockedError(
                f"another distrib run ({self._holder()}) is using the ledger "
                f"{self.path}; this run does nothing. Wait for it to finish"
            ) from None
        except OSError as e:
            _give_back_fd(fd)
            raise _cannot_lock(self.path, e) from None
        self._lock_fd, self._lock_kind = fd, fcntl.LOCK_EX
        self.kv_put("run:holder", f"pid {os.getpid()}, started {iso(now())}")

    def _holder(self, wait: float = 10.0) -> str:
        """Who holds the run lock, as its holder wrote it ("pid 123, started ...").  The
        holder writes it just after taking the lock, so a run refused in that instant
        waits for it (on a loaded machine that write can take seconds; the wait ends as
        soon as a live holder's record is there); a record left by a run that is gone is
        not believed."""
        deadline = time.monotonic() + wait
        while True:
            text = str(self.kv_get("run:holder") or "")
            m = re.match(r"pid (\d+)", text)
            if m and _alive(int(m.group(1))):
                return text
            if time.monotonic() >= deadline:
                return "unknown process"
            time.sleep(0.05)

    def lock_holder(self) -> str | None:
        """Who holds the run lock now ("pid 123, started ..."), or None when no run does."""
        if not self._file_backed() or self._lock_fd is not None:
            return None  # in memory, or this process holds it
        fd = _take_fd(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self._holder()
        except OSError:
            return None
        finally:
            _give_back_fd(fd)
        return None

    def unlock(self) -> None:
        if self._lock_fd is not None:
            _give_back_fd(self._lock_fd)
            self._lock_fd = self._lock_kind = None

    def _exclusive(self) -> bool:
        """Whether this process may take over rows other runs left ``claimed``.

        Only the run lock proves that the runs which claimed them are gone.  Without it
        the ledger is held shared (from the first claim until close), which keeps a
        run from starting beside this process.
        """
        if self._lock_kind == fcntl.LOCK_EX or not self._file_backed():
            return True
        if self._lock_kind is None:
            fd = _take_fd(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                _give_back_fd(fd)
                holder = self._holder()
                raise LockedError(
                    f"another distrib run ({holder}) is using the ledger {self.path}; "
                    "nothing is claimed beside it. Wait for it to finish"
                ) from None
            except OSError as e:
                _give_back_fd(fd)
                raise _cannot_lock(self.path, e) from None
            self._lock_fd, self._lock_kind = fd, fcntl.LOCK_SH
        return False

    def _holds_run_lock(self) -> bool:
        """Whether rows other runs left ``claimed`` are this process's to take, asked
        without taking any lock (a dry run lists beside a running run)."""
        return self._lock_kind == fcntl.LOCK_EX or not self._file_backed()

    @contextlib.contextmanager
    def checkpoints_in_background(self, every: float = 0.1) -> Iterator[None]:
        """While inside, a second connection in a thread checkpoints the WAL every
        ``every`` seconds, instead of the commit that crosses ``wal_autocheckpoint``.

        A checkpoint syncs the WAL and the database file (https://sqlite.org/wal.html,
        synchronous=NORMAL): milliseconds the committing thread waits.  During a send
        that thread is the event loop driving every SMTP connection, so each checkpoint
        stalled them all; now only one in four does, and it has little left to copy.
        Every commit is still its own transaction, and the WAL is synced at least as
        often as before at ~5,000 messages/s (about every 1,000 pages), more often when
        slower.  A PASSIVE checkpoint never blocks the writer.
        """
        with self.db.checkpoints_in_background(self.path, every):
            yield
