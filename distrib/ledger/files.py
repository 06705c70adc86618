"""Opening a ledger file: creating it whole, refusing what is not ours, read-only mode."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
import urllib.parse
from pathlib import Path

from ..errors import LedgerError
from ..paths import make_private_dir
from .common import readonly_message
from .runs import _give_back_fd, _take_fd
from .schema import APPLICATION_ID, VERSION, migrate
from .sqlite import Connection

SQLITE_HEADER = b"SQLite format 3\x00"


def _create(path: Path) -> None:
    """Make a new ledger at ``path`` whole or not at all: built (mode 0600) under a
    temporary name and linked into place, so a file at ``path`` is always a complete
    ledger and an empty or foreign one can be refused instead of started over."""
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            migrate(db, path, 0)
            db.execute("PRAGMA journal_mode = WAL")
        finally:
            db.close()
        try:
            os.link(tmp, path)  # never replaces: another process may have made it meanwhile
        except FileExistsError:
            pass
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{tmp}{suffix}")


def _being_created(path: Path) -> bool:
    """Whether ``path``'s second link is the temporary name of :func:`_create`."""
    st = os.stat(path)
    for tmp in path.parent.glob(f".{path.name}.new-*"):
        with contextlib.suppress(OSError):
            got = os.stat(tmp)
            if (got.st_dev, got.st_ino) == (st.st_dev, st.st_ino):
                return True
    return False


def _check_file(path: Path) -> None:
    """Refuse an existing file that is not a distrib ledger, saying how to get one back."""
    # Read through a descriptor that is kept open (runs._take_fd): closing any descriptor
    # of the file would drop every POSIX lock this process holds on it, SQLite's own
    # included, and another process closing its connection would then delete the WAL
    # from under a connection this process still has open (a "disk I/O error" after).
    fd = _take_fd(path)
    try:
        head = os.pread(fd, 100, 0)
    finally:
        _give_back_fd(fd)
    fix = (
        f"restore it from a backup (cp BACKUP {path}), or to start over move it away "
        f"(mv {path} {path}.old) and run again"
    )
    if not head:
        raise LedgerError(
            f"the ledger {path} is empty (0 bytes), so its history, subscribers and signing key "
            f"are gone; {fix}"
        )
    links = os.stat(path).st_nlink
    for _ in range(40):
        if links == 1 or not _being_created(path):
            break
        time.sleep(0.05)  # another process is linking a new ledger into place
        links = os.stat(path).st_nlink
    if links > 1:
        # SQLite names the -wal and -shm after the path: through two names, two processes
        # would each keep their own journal of one file (https://sqlite.org/howtocorrupt.html).
        raise LedgerError(
            f"the ledger {path} has {links} hard links, and SQLite keeps its journal by name, so "
            "two names would corrupt it; remove the other links (find / -samefile "
            f"{path}) and use a symlink if you need a second name"
        )
    other = (
        f"set [ledger] path to the ledger, or if this was it, restore it from a backup "
        f"(cp BACKUP {path}) or move it away (mv {path} {path}.old) to start over"
    )
    if not head.startswith(SQLITE_HEADER):
        raise LedgerError(f"{path} is not a distrib ledger (not an SQLite file); {other}")
    if len(head) >= 72 and int.from_bytes(head[68:72], "big") != APPLICATION_ID:
        raise LedgerError(f"{path} is not a distrib ledger; {other}")


_FIX = "set [ledger] path to a file in a folder distrib can write"


def connect(path: Path) -> tuple[Connection, bool]:
    """The connection :func:`distrib.ledger.open_ledger` wraps, and whether it is read-only.

    Only a missing file is created.  A file or folder this process cannot write is
    opened read-only (``Ledger.readonly``): reading commands work, writing ones say so.
    """
    path = Path(path)
    db, readonly = _connect(path)
    version = _check_version(db, path)
    if readonly:
        if version < VERSION:
            db.close()
            raise LedgerError(readonly_message(path, f"upgrading it to schema {VERSION}"))
        return Connection(db), True
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
    db.execute("PRAGMA foreign_keys = ON")
    migrate(db, path, version)
    return Connection(db), False


def _connect(path: Path) -> tuple[sqlite3.Connection, bool]:
    """A connection to the ledger at ``path`` (created if missing, checked if not), and
    whether it is read-only."""
    memory = str(path) == ":memory:"
    try:
        if not memory and not path.exists() and not path.is_symlink():
            make_private_dir(path.parent)
            _create(path)
        if not memory and not path.is_dir():
            _check_file(path)
        # SQLite writes its -wal and -shm beside the file a symlink points at.
        real = path.resolve() if not memory else path
        readonly = not memory and not (os.access(real, os.W_OK) and os.access(real.parent, os.W_OK))
        if readonly:
            return _open_readonly(path), True
        return sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30
        ), False
    except OSError as e:
        raise LedgerError(f"cannot open the ledger {path}: {_why_not(path, e)}; {_FIX}") from None
    except sqlite3.Error as e:
        reason = "that is a folder" if path.is_dir() else str(e)
        raise LedgerError(f"cannot open the ledger {path}: {reason}; {_FIX}") from None


def _why_not(path: Path, e: OSError) -> str:
    # mkdir says "File exists" when a part of the path is a file: name that part.
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker:
        return f"{blocker} is a file, not a folder"
    if path.is_dir():
        return "that is a folder"
    return e.strerror or str(e)


def _check_version(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of an open ledger; a foreign or newer one is closed and refused."""
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version: int = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        db.close()
        raise LedgerError(
            f"{path} is not a distrib ledger ({e}); set [ledger] path to another file"
        ) from None
    if str(path) != ":memory:" and app_id != APPLICATION_ID:
        db.close()
        raise LedgerError(f"{path} is not a distrib ledger; set [ledger] path to another file")
    if version > VERSION:
        db.close()
        raise LedgerError(
            f"the ledger {path} was written by a newer distrib (schema {version}, this one knows "
            f"{VERSION}); upgrade distrib"
        )
    return version


def _open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection.  ``mode=ro`` reads a WAL database while its -shm can be
    used; in a folder nobody can write (so nobody is writing the ledger now) and without
    a -shm, only ``immutable=1`` opens it (https://sqlite.org/uri.html)."""
    uri = "file:" + urllib.parse.quote(str(path.absolute()))
    try:
        db = sqlite3.connect(
            f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False, timeout=30
        )
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        return sqlite3.connect(
            f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False
        )
