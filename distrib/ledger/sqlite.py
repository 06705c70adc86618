"""The one place distrib speaks to SQLite: the connection every ledger module's SQL
goes through, and the SQLite dialect.

Every query in ``distrib/ledger/`` is written with ``?`` placeholders and standard
``INSERT ... ON CONFLICT`` upserts, and runs through :class:`Connection`:
``execute``/``executemany`` (a cursor with ``fetchone``/``fetchall``, iterable,
``rowcount``, ``lastrowid``), ``transaction()`` (BEGIN IMMEDIATE ... COMMIT, ROLLBACK
on error) and :meth:`Connection.batches`.  What only SQLite says lives here (the
``PRAGMA``s, ``user_version`` and ``application_id``, the WAL checkpoints) or in
:mod:`.schema` (``WITHOUT ROWID`` tables): a second backend supplies its own
``Connection`` with the same methods and its own schema module.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

Params = Sequence[Any]


class Connection:
    """A SQLite connection in autocommit mode, as the ledger modules use it."""

    #: the driver's errors, which :func:`.common.wrap_errors` turns into LedgerError
    Error = sqlite3.DatabaseError

    def __init__(self, raw: sqlite3.Connection):
        self.raw = raw
        raw.row_factory = sqlite3.Row

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Params]) -> sqlite3.Cursor:
        return self.raw.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def close(self) -> None:
        self.raw.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""
        self.raw.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")

    @contextlib.contextmanager
    def batches(
        self, *, dry_run: bool = False, durable: bool = False
    ) -> Iterator[Callable[[], None]]:
        """One transaction committed in pieces: the function it gives commits the work
        done so far and begins anew.  A dry run's work is rolled back at the end.
        ``durable``: every commit is fully synced (see :meth:`execute_durably`)."""

        def commit_so_far() -> None:
            self.raw.execute("COMMIT")
            self.raw.execute("BEGIN IMMEDIATE")

        if durable:
            self.raw.execute("PRAGMA synchronous = FULL")
        try:
            self.raw.execute("BEGIN IMMEDIATE")
            try:
                yield commit_so_far
            except BaseException:
                self.raw.execute("ROLLBACK")
                raise
            self.raw.execute("ROLLBACK" if dry_run else "COMMIT")
        finally:
            if durable:
                self.raw.execute("PRAGMA synchronous = NORMAL")

    def execute_durably(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one write and commit it with a full sync (``synchronous = FULL``: the WAL
        is on disk when this returns), for what the law requires to last: unsubscribes
        and suppressions.  Everything else commits with ``NORMAL`` (durable at the next
        checkpoint, never corrupt).  Inside a caller's transaction the write joins it and
        that commit decides (the level cannot change inside a transaction)."""
        if self.raw.in_transaction:
            return self.raw.execute(sql, params)
        self.raw.execute("PRAGMA synchronous = FULL")
        try:
            return self.raw.execute(sql, params)  # autocommit: its own transaction
        finally:
            self.raw.execute("PRAGMA synchronous = NORMAL")

    # --- the SQLite dialect --------------------------------------------------------

    def pragma(self, name: str) -> Any:
        """The value of ``PRAGMA name``."""
        return self.raw.execute(f"PRAGMA {name}").fetchone()[0]

    def set_pragma(self, name: str, value: int | str) -> None:
        self.raw.execute(f"PRAGMA {name} = {value}")

    @contextlib.contextmanager
    def checkpoints_in_background(self, path: Path, every: float) -> Iterator[None]:
        """See :meth:`distrib.ledger.runs.RunLock.checkpoints_in_background`."""
        if self.raw.in_transaction or str(path) == ":memory:":
            yield
            return
        stop = threading.Event()

        def run() -> None:
            try:
                db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            except sqlite3.Error:
                return
            # On an error this thread stops; the commits checkpoint again once we are done.
            try:
                with contextlib.suppress(sqlite3.Error):
                    while not stop.wait(every):
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                db.close()

        previous = int(self.pragma("wal_autocheckpoint"))
        # The WAL only restarts from its beginning after a checkpoint that caught up with
        # every commit, which one running beside a busy writer never does: the commits
        # still checkpoint, rarely, so the file stays bounded (4 x the usual size).
        self.set_pragma("wal_autocheckpoint", previous * 4)
        thread = threading.Thread(target=run, name="ledger-checkpoint", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.set_pragma("wal_autocheckpoint", previous)
