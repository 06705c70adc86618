"""The ledger on PostgreSQL: connecting, the schema and its migrations, the run lock.

``[ledger] url = "postgresql://…"`` puts the ledger in a PostgreSQL database, so that
hosts, containers thrown away after each run and ``distrib serve`` replicas share one
state.  The design keeps one ledger with two dialects:

- **One schema, one migration history.**  The numbered functions in
  ``distrib.ledger.MIGRATIONS`` run unchanged on both backends: here each statement passes
  through :func:`translate`, which turns the few SQLite-only spellings into PostgreSQL's
  (``WITHOUT ROWID``, ``BLOB``, ``INTEGER PRIMARY KEY``, ``?`` placeholders).  A migration
  that needs a different statement per dialect asks ``db.dialect``.  The version SQLite
  keeps in ``PRAGMA user_version`` and the mark ``PRAGMA application_id`` live here in the
  one-row table ``distrib_meta``; a database with tables but without that row (another
  application's) or with a newer version is refused, as a foreign or newer file is.
  Migrations run in one transaction under a transaction-scoped advisory lock, so two
  hosts starting at once migrate once; PostgreSQL's DDL is transactional, so a failed
  migration leaves the database as it was.
- **The run lock is a session advisory lock** (``pg_try_advisory_lock``) on the key
  (APPLICATION_ID, 1): held by the connection, dropped by the server when the process
  ends (even by ``kill -9``: the socket closes).  A process that claims without the run
  lock holds the same key shared, as it holds the SQLite file shared.
- **Errors are one line each** (a :class:`~distrib.errors.LedgerError`, exit 2): an
  unreachable server, refused credentials, a missing database, another application's
  database, a newer schema.  The password never appears in a message.

psycopg 3 is imported only here (``pip install 'distrib[postgres]'``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import socket
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import ledger as _ledger
from ..errors import LedgerError, LockedError
from .common import iso

if TYPE_CHECKING:
    import psycopg

#: The advisory-lock keys: (APPLICATION_ID, one of these).  APPLICATION_ID ("dstb")
#: fits PostgreSQL's int4, so the two-key form names distrib's locks apart from others'.
MIGRATION_KEY = 0
RUN_KEY = 1

INSTALL = "pip install 'distrib[postgres]'"


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password (and query), fit for a message."""
    try:
        u = urllib.parse.urlsplit(url)
        host = u.hostname or "localhost"
        port = u.port or 5432
    except ValueError:
        return "the [ledger] url"
    user = f"{urllib.parse.unquote(u.username)}@" if u.username else ""
    if ":" in host:
        host = f"[{host}]"
    return f"{u.scheme}://{user}{host}:{port}{u.path}"


@functools.lru_cache(maxsize=512)
def translate(sql: str, *, params: bool = True) -> str:
    """A statement of the SQLite schema, a migration or a query in PostgreSQL's dialect.

    ``params``: the statement is run with parameters, so ``?`` becomes ``%s`` and a
    literal ``%`` is doubled (psycopg's format); without, it is left as it is.
    """
    sql = re.sub(r"\bBLOB\b", "BYTEA", sql)
    sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)  # SQLite's INTEGER is 64 bits
    sql = re.sub(r"^(\s*)BEGIN IMMEDIATE\b", r"\1BEGIN", sql)
    # SQLite's IS compares like IS NOT DISTINCT FROM (NULL equals NULL).
    sql = re.sub(r"\bIS NOT\s+(?!NULL\b|DISTINCT\b)", "IS DISTINCT FROM ", sql)
    sql = re.sub(r"\bIS\s+(?!NULL\b|NOT\b|DISTINCT\b)", "IS NOT DISTINCT FROM ", sql)
    table = re.match(r"\s*(?:--[^\n]*\n\s*)*CREATE TABLE (\w+)", sql)
    if table:
        sql = _create_table(table.group(1), sql)
    return _placeholders(sql) if params else sql


def _create_table(name: str, sql: str) -> str:
    """SQLite's rowid, made explicit.  A table ``WITHOUT ROWID`` has none.  An
    ``INTEGER PRIMARY KEY`` column is the rowid: a NULL inserted there becomes max + 1
    (a trigger, :data:`ROWID_ALIASES`).  Any other table gets a ``rowid`` column that
    numbers rows on insert, so ``max(rowid)`` and ``rowid <= ?`` read the same."""
    if re.search(r"\)\s*WITHOUT ROWID", sql):
        return re.sub(r"\)\s*WITHOUT ROWID", ")", sql)
    alias = re.search(r"(\w+)\s+BIGINT PRIMARY KEY", sql)
    if alias:
        col = alias.group(1)
        fn = f"distrib_{name}_{col}"
        return (
            f"{sql.rstrip().rstrip(';')};\n"
            f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN "
            f"IF NEW.{col} IS NULL THEN NEW.{col} := (SELECT coalesce(max({col}), 0) + 1 FROM {name}); END IF; "
            f"RETURN NEW; END $fn$;\n"
            f"CREATE TRIGGER {name}_{col} BEFORE INSERT ON {name} FOR EACH ROW EXECUTE FUNCTION {fn}()"
        )
    return re.sub(r"\(", "(\n    rowid BIGINT GENERATED BY DEFAULT AS IDENTITY,", sql, count=1)


def _placeholders(sql: str) -> str:
    """``?`` -> ``%s`` outside quotes; a literal ``%`` doubled (psycopg's format)."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    return "".join(out)


#: Tables whose INTEGER PRIMARY KEY is SQLite's rowid: table -> column.  An INSERT into
#: one returns the column, as ``cursor.lastrowid``.
ROWID_ALIASES: dict[str, str] = {"editions": "id", "consent_events": "id", "mail_outbox": "id"}


class MigrationDB:
    """What a migration function is given on PostgreSQL: ``execute`` as on sqlite3."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any]):
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.conn.execute(
            translate(sql).rstrip().rstrip(";"), tuple(params) if params else None
        )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    text = re.sub(r"^connection failed:\s*", "", text)
    # libpq: 'connection to server at "127.0.0.1", port 1 failed: Connection refused'
    text = re.sub(r'^connection to server at "[^"]*"(, port \d+)? failed:\s*', "", text)
    text = re.sub(r'^connection to server on socket "[^"]*" failed:\s*', "", text)
    line = text.splitlines()[0] if text else type(e).__name__
    return line.removeprefix("FATAL:").strip()


def _connect_message(url: str, e: BaseException) -> str:
    where = redact(url)
    u = urllib.parse.urlsplit(url)
    reason = _first_line(e)
    low = reason.lower()
    if (
        "password authentication failed" in low
        or "no password supplied" in low
        or "pg_hba.conf" in low
    ):
        user = urllib.parse.unquote(u.username or "") or "(none)"
        return (
            f"PostgreSQL at {where} refused the credentials of user {user} ({reason}); "
            "fix the user and password in [ledger] url (or the variable [ledger] url_env names)"
        )
    if "does not exist" in low and "database" in low:
        db = u.path.lstrip("/") or "(none)"
        return f"the database {db} does not exist at {where}; create it (createdb {db}) or fix [ledger] url"
    return (
        f"cannot reach the ledger database {where} ({reason}); check the host and port in "
        "[ledger] url and that PostgreSQL is running there"
    )


def connect(url: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode (every statement commits unless in a transaction)."""
    try:
        import psycopg
    except ImportError:
        raise LedgerError(
            f"[ledger] url names a PostgreSQL database, which needs psycopg: {INSTALL}"
        ) from None
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="distrib")
    except psycopg.OperationalError as e:
        raise LedgerError(_connect_message(url, e)) from None
    except psycopg.Error as e:  # ProgrammingError: a malformed URL or option
        raise LedgerError(
            f"[ledger] url is not a usable PostgreSQL URL ({_first_line(e)}); fix [ledger] url"
        ) from None


def _fail(conn: psycopg.Connection[Any], message: str) -> LedgerError:
    conn.close()
    return LedgerError(message)


def migrate(conn: psycopg.Connection[Any], url: str, upto: int | None = None) -> int:
    """Check that the database is a distrib ledger (or empty) and bring it to ``upto``
    (default: this code's schema).  Returns the version it is at."""
    import psycopg

    target = _ledger.VERSION if upto is None else upto
    where = redact(url)
    try:
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", (_ledger.APPLICATION_ID, MIGRATION_KEY)
            )
            if conn.execute("SELECT to_regclass('distrib_meta')").fetchone() == (None,):
                tables = [r[0] for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() ORDER BY table_name LIMIT 3"
                )]  # fmt: skip
                if tables:
                    raise _fail(conn, (
                        f"the database {where} is not a distrib ledger (it holds other tables: "
                        f"{', '.join(tables)}); point [ledger] url at an empty database or a distrib one"
                    ))  # fmt: skip
                version = 0
            else:
                row = conn.execute("SELECT application_id, version FROM distrib_meta").fetchone()
                if row is None or row[0] != _ledger.APPLICATION_ID:
                    raise _fail(conn, (
                        f"the database {where} is not a distrib ledger (its distrib_meta is not ours); "
                        "point [ledger] url at an empty database or a distrib one"
                    ))  # fmt: skip
                version = int(row[1])
            if version > _ledger.VERSION:
                raise _fail(conn, (
                    f"the ledger {where} was written by a newer distrib (schema {version}, this one "
                    f"knows {_ledger.VERSION}); upgrade distrib"
                ))  # fmt: skip
            db = MigrationDB(conn)
            while version < target:
                # MIGRATIONS are typed for sqlite3.Connection; MigrationDB has the part they
                # use (execute).  A protocol in ledger/schema.py would drop this ignore.
                _ledger.MIGRATIONS[version](db)  # type: ignore[arg-type]
                if version == 0:
                    conn.execute(
                        "CREATE TABLE distrib_meta (application_id BIGINT NOT NULL, version BIGINT NOT NULL)"
                    )
                    conn.execute(
                        "INSERT INTO distrib_meta VALUES (%s, 0)", (_ledger.APPLICATION_ID,)
                    )
                version += 1
                conn.execute("UPDATE distrib_meta SET version = %s", (version,))
    except LedgerError:
        raise
    except (psycopg.Error, sqlite3.Error) as e:
        conn.close()
        raise LedgerError(
            f"cannot migrate the ledger {where} to schema {target}: {_first_line(e)}"
        ) from None
    return version


class _NeverRaised(Exception):
    pass


class Row(tuple[Any, ...]):
    """A result row read by position or by column name, as ``sqlite3.Row``."""

    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._names[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], Row]:
    names = {d.name: i for i, d in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        row = Row(values)
        row._names = names
        return row

    return make


class Cursor:
    """The part of ``sqlite3.Cursor`` the ledger uses, over a psycopg cursor."""

    def __init__(self, cur: psycopg.Cursor[Row], lastrowid: int | None = None):
        self._cur = cur
        self.lastrowid = lastrowid
        self.rowcount = cur.rowcount

    def fetchone(self) -> Row | None:
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self) -> list[Row]:
        return self._cur.fetchall() if self._cur.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self._cur) if self._cur.description else iter(())


class Connection:
    """The part of ``sqlite3.Connection`` the ledger uses, over a psycopg connection in
    autocommit mode: the ledger's SQL runs through :func:`translate`; ``BEGIN`` and
    ``COMMIT`` are the ledger's own, as on SQLite.  A database error is one line."""

    dialect = "postgresql"
    #: what :func:`distrib.ledger.common.wrap_errors` catches: nothing, since this
    #: connection already turns psycopg's errors into one-line LedgerErrors
    Error = _NeverRaised

    def __init__(self, conn: psycopg.Connection[Any], where: str):
        self.conn = conn
        self.where = where

    @property
    def in_transaction(self) -> bool:
        import psycopg.pq

        return self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def _error(self, e: Exception) -> LedgerError:
        import psycopg

        if isinstance(e, psycopg.OperationalError) or self.conn.closed:
            return LedgerError(
                f"lost the connection to the ledger database {self.where} ({_first_line(e)}); "
                "what was not marked is sent by the next run. Check that PostgreSQL is reachable"
            )
        return LedgerError(f"ledger {self.where}: {_first_line(e)}")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        import psycopg

        text = translate(sql, params=bool(params)).rstrip().rstrip(";")
        returning = None
        insert = re.match(r"\s*INSERT INTO (\w+)", text)
        if insert and insert.group(1) in ROWID_ALIASES and "RETURNING" not in text.upper():
            returning = ROWID_ALIASES[insert.group(1)]
            text += f" RETURNING {returning}"
        try:
            cur = self.conn.cursor(row_factory=_row_factory)
            cur.execute(text, tuple(params) if params else None)
            lastrowid = None
            if returning is not None:
                got = cur.fetchone()
                lastrowid = int(got[0]) if got else None
            return Cursor(cur, lastrowid)
        except psycopg.Error as e:
            raise self._error(e) from None

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> None:
        import psycopg

        try:
            with self.conn.cursor() as cur:
                cur.executemany(translate(sql), [tuple(p) for p in seq])
        except psycopg.Error as e:
            raise self._error(e) from None

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """BEGIN ... COMMIT (ROLLBACK on error), as the SQLite connection's."""
        self.execute("BEGIN")
        try:
            yield self
        except BaseException:
            if not self.conn.closed:
                self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    @contextlib.contextmanager
    def batches(
        self, *, dry_run: bool = False, durable: bool = False
    ) -> Iterator[Callable[[], None]]:
        """One transaction committed in pieces (see the SQLite connection's).  Every
        PostgreSQL commit is durable (``synchronous_commit`` on), so ``durable`` changes nothing."""

        def commit_so_far() -> None:
            self.execute("COMMIT")
            self.execute("BEGIN")

        self.execute("BEGIN")
        try:
            yield commit_so_far
        except BaseException:
            if not self.conn.closed:
                self.execute("ROLLBACK")
            raise
        self.execute("ROLLBACK" if dry_run else "COMMIT")

    def execute_durably(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """A write committed durably: every PostgreSQL commit is."""
        return self.execute(sql, params)


class PostgresLedger(_ledger.Ledger):
    """The ledger in a PostgreSQL database: every operation of :class:`distrib.ledger.Ledger`,
    its SQL run through :class:`Connection`; the run lock an advisory lock."""

    dialect = "postgresql"

    def __init__(self, url: str, conn: psycopg.Connection[Any]):
        where = redact(url)
        self.pg = Connection(conn, where)
        # The ledger's parts type ``db`` as the SQLite Connection; this one has the same
        # methods.  A connection protocol in ledger/common.py would drop this ignore.
        super().__init__(Path(where), self.pg)  # type: ignore[arg-type]
        self.url = url
        #: the database, as messages name it (``path`` is for the SQLite file's checks)
        self.where = where

    # The ledger's messages say "the ledger {path}": the database, without the password.
    # (Part declares ``path: Path``, which would mangle the URL's "//"; hence the ignore.)
    @property  # type: ignore[override]
    def path(self) -> str:
        return self.where

    @path.setter
    def path(self, value: Any) -> None:
        pass

    def close(self) -> None:
        if not self.pg.closed:
            self.unlock()
            self.db.close()

    def __enter__(self) -> PostgresLedger:
        return self

    def _file_backed(self) -> bool:
        return True

    @contextlib.contextmanager
    def checkpoints_in_background(self, every: float = 0.1) -> Iterator[None]:
        yield  # SQLite's WAL only; PostgreSQL checkpoints on its own

    # --- the run lock --------------------------------------------------------------

    def _try(self, fn: str) -> bool:
        row = self.db.execute(f"SELECT {fn}(?, ?)", (_ledger.APPLICATION_ID, RUN_KEY)).fetchone()
        return bool(row and row[0])

    def lock(self) -> None:
        """Take the run lock: one run at a time per database, on any host.  Released when
        this connection ends, even by a kill."""
        if self._lock_kind == fcntl.LOCK_EX:
            return
        self.unlock()  # a shared hold of ours would block the exclusive one
        if not self._try("pg_try_advisory_lock"):
            holder = self.kv_get("run:holder") or "unknown process"
            raise LockedError(
                f"another distrib run ({holder}) is using the ledger {self.where}; "
                "this run does nothing. Wait for it to finish"
            )
        self._lock_kind = fcntl.LOCK_EX
        self.kv_put(
            "run:holder",
            f"pid {os.getpid()} on {socket.gethostname()}, started {iso(_ledger.now())}",
        )

    def lock_holder(self) -> str | None:
        """Who holds the run lock now, or None when no run does (or this process does)."""
        if self._lock_kind == fcntl.LOCK_EX:
            return None
        row = self.db.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND mode = 'ExclusiveLock' AND classid = ? AND objid = ? AND objsubid = 2 "
            "AND pid <> pg_backend_pid()",
            (_ledger.APPLICATION_ID, RUN_KEY),
        ).fetchone()
        if not row or not row[0]:
            return None
        return str(self.kv_get("run:holder") or "unknown process")

    def unlock(self) -> None:
        if self._lock_kind is not None and not self.pg.closed:
            fn = (
                "pg_advisory_unlock"
                if self._lock_kind == fcntl.LOCK_EX
                else "pg_advisory_unlock_shared"
            )
            with contextlib.suppress(LedgerError):
                self._try(fn)
        self._lock_kind = None

    def _exclusive(self) -> bool:
        """Whether this process may take over rows other runs left ``claimed`` (it holds
        the run lock); else the lock is held shared, so no run starts beside it."""
        if self._lock_kind == fcntl.LOCK_EX:
            return True
        if self._lock_kind is None:
            if not self._try("pg_try_advisory_lock_shared"):
                holder = self.kv_get("run:holder") or "unknown process"
                raise LockedError(
                    f"another distrib run ({holder}) is using the ledger {self.where}; "
                    "nothing is claimed beside it. Wait for it to finish"
                )
            self._lock_kind = fcntl.LOCK_SH
        return False


def open_postgres(url: str) -> PostgresLedger:
    """Open (creating or migrating the schema in) the PostgreSQL ledger at ``url``."""
    conn = connect(url)
    migrate(conn, url)
    return PostgresLedger(url, conn)


# --- moving a ledger between backends -------------------------------------------------


def _tables() -> list[tuple[str, list[str], bool]]:
    """Every table of the current schema in creation order (parents first): its name,
    its columns, and whether its SQLite rowid is copied too (a table with a rowid that
    is not an INTEGER PRIMARY KEY: ``posts``' rowid is the order posts were first seen)."""
    with _ledger.open_ledger(Path(":memory:")) as mem:
        out = []
        for name, sql in mem.db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY rowid"
        ):
            if name.startswith("sqlite_"):
                continue
            cols = [r["name"] for r in mem.db.execute(f"PRAGMA table_info({name})")]
            has_rowid = "WITHOUT ROWID" not in sql and name not in ROWID_ALIASES
            out.append((name, cols, has_rowid))
        return out


def ledger_counts(led: _ledger.Ledger) -> dict[str, int]:
    """Rows per table."""
    return {
        name: int(led.db.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
        for name, _, _ in _tables()
    }


def copy_ledger(
    src: _ledger.Ledger, dst: _ledger.Ledger, *, where: str, batch: int = 1000
) -> dict[str, int]:
    """Copy every row of ``src`` into the empty ledger ``dst`` (SQLite or PostgreSQL, either
    way) in one transaction; returns rows per table.  A non-empty ``dst`` is refused."""
    tables = _tables()
    with dst.transaction():
        used = {name: n for name, n in ledger_counts(dst).items() if n}
        if used:
            listed = ", ".join(f"{n} in {name}" for name, n in used.items())
            raise LedgerError(
                f"the ledger {where} is not empty ({listed}); copy only into a new, empty database or file"
            )
        copied: dict[str, int] = {}
        for name, cols, has_rowid in tables:
            names = (["rowid"] if has_rowid else []) + cols
            select = (
                f"SELECT {', '.join(names)} FROM {name} ORDER BY {names[0] if has_rowid else '1'}"
            )
            insert = (
                f"INSERT INTO {name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
            )
            rows = [tuple(r) for r in src.db.execute(select)]
            for i in range(0, len(rows), batch):
                dst.db.executemany(insert, rows[i : i + batch])
            copied[name] = len(rows)
            if has_rowid and isinstance(dst, PostgresLedger) and rows:
                # the identity goes on after the highest rowid copied
                dst.db.execute(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'rowid'), ?)",
                    (max(r[0] for r in rows),),
                )
    return copied


def open_target(target: str) -> tuple[_ledger.Ledger, str]:
    """The ledger ``distrib ledger copy --to`` names: a PostgreSQL URL or an SQLite file."""
    if is_postgres_url(target):
        return open_postgres(target), redact(target)
    return _ledger.open_ledger(Path(target)), target
