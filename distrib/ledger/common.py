"""What every ledger module shares: the clock, ISO times, the error wrapper."""

from __future__ import annotations

import functools
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import LedgerError

if TYPE_CHECKING:
    from .sqlite import Connection

T = TypeVar("T")

#: A row as the queries give it: indexed by position and by column name.
Row = sqlite3.Row


def readonly_message(path: Path, what: str) -> str:
    return (
        f"the ledger {path} is read-only here (the file or its folder cannot be written); "
        f"{what} writes to it: run it as the user who owns the ledger, or make both writable"
    )


def wrap_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn database errors into LedgerError naming the file."""

    @functools.wraps(fn)
    def wrapper(self: Part, *args: Any, **kwargs: Any) -> T:
        try:
            return fn(self, *args, **kwargs)
        except self.db.Error as e:
            if "readonly" in str(e):  # "attempt to write a readonly database"
                raise LedgerError(readonly_message(self.path, "this command")) from None
            raise LedgerError(f"ledger {self.path}: {e}") from e

    return wrapper


def now() -> datetime:
    """The clock, read through ``distrib.ledger.now`` (the one patch point tests use)."""
    clock: Callable[[], datetime] = sys.modules[__name__.rpartition(".")[0]].now
    return clock()


def system_now() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds") if dt else None


def from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class Part:
    """What every concern of the :class:`~distrib.ledger.Ledger` facade stands on."""

    #: the ledger file (or ``:memory:``)
    path: Path
    #: the one connection every query goes through (:class:`.sqlite.Connection`)
    db: Connection
    #: opened read-only: reading works, a command that must write says so
    readonly: bool
    #: this process's mark on the rows it claims
    run: str
