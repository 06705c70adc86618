"""The ledger: distrib's state in one SQLite file (WAL).

What went where, when, with which remote id.  Its UNIQUE keys make a second send of
the same thing impossible: every delivery is *claimed* (a committed row) before the
mailer or channel is called and *marked* (committed) right after, one item at a time,
never a save at the end of a run.  A run killed at any instant and run again resends at
most the items whose rows it finds still ``claimed``: the ones in flight at the kill.

One module per concern, joined here in the :class:`Ledger` facade:

- :mod:`.schema`: the DDL and the numbered migrations;
- :mod:`.files`: opening a file (created whole, foreign files refused, read-only mode);
- :mod:`.runs`: the run lock and a run's WAL checkpoints;
- :mod:`.posts`: posts as seen, and the HTTP cache;
- :mod:`.editions`: editions and their email deliveries;
- :mod:`.shares`: share deliveries;
- :mod:`.subscribers`: subscribers and suppression;
- :mod:`.signups`: the consent record and the outbox of confirmation emails;
- :mod:`.feedback`: clicks on tracked links, bounces and complaints per edition;
- :mod:`.kv`: the key-value store (and the first-run baselines).

Every query goes through one :class:`.sqlite.Connection` (``Ledger.db``); nothing
outside this package writes SQL.  ARCHITECTURE.md ("The ledger") says how a second
backend plugs in.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import UTC, datetime
from pathlib import Path

from .common import Row, wrap_errors
from .editions import Editions
from .feedback import Feedback
from .files import SQLITE_HEADER, connect
from .kv import KeyValue
from .posts import Posts, post_from_row, post_to_row
from .runs import RunLock
from .schema import APPLICATION_ID, MIGRATIONS, SCHEMA_V1, VERSION
from .shares import ShareRow, Shares
from .signups import Signups
from .sqlite import Connection
from .subscribers import Subscribers

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_V1",
    "SQLITE_HEADER",
    "VERSION",
    "Connection",
    "Ledger",
    "Row",
    "ShareRow",
    "now",
    "open_ledger",
    "post_from_row",
    "post_to_row",
    "wrap_errors",
]


def now() -> datetime:
    """The clock; tests patch this (``distrib.ledger.now``), and every part of the
    ledger and of distrib reads it through here."""
    return datetime.now(UTC)


class Ledger(Editions, Shares, RunLock, KeyValue, Subscribers, Signups, Feedback, Posts):
    """One ledger.  Open with :func:`open_ledger`; use as a context manager."""

    def __init__(self, path: Path, db: Connection, *, readonly: bool = False):
        self.path = path
        self.db = db
        self.readonly = readonly
        self.run = secrets.token_hex(8)
        self._lock_fd = None
        self._lock_kind = None

    def close(self) -> None:
        self.unlock()
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> contextlib.AbstractContextManager[Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""
        return self.db.transaction()


def open_ledger(path: Path) -> Ledger:
    """Open (creating or migrating) the ledger at ``path`` (see :func:`.files.connect`).

    Only a missing file is created.  A file or folder this process cannot write is
    opened read-only (``Ledger.readonly``): reading commands work, writing ones say so.
    """
    db, readonly = connect(Path(path))
    return Ledger(Path(path), db, readonly=readonly)
