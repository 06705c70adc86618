"""The ledger's PostgreSQL foundation against a real, throwaway PostgreSQL (tests/pgcluster.py):
one schema and one migration history with SQLite, the errors one line each (exit 2), and
the run lock as an advisory lock held across processes ("hosts")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from distrib import ledger
from distrib.errors import EXIT_USAGE, LedgerError, LockedError
from tests.pgcluster import Cluster, _free_port

pg = pytest.importorskip("distrib.ledger.postgres")
psycopg = pytest.importorskip("psycopg")


def _sqlite_schema(path: Path) -> dict[str, list[tuple[str, bool, bool]]]:
    """Per table: (column, NOT NULL, in the primary key), in order."""
    with ledger.open_ledger(path) as led:
        tables = [
            r[0]
            for r in led.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        out = {}
        for t in tables:
            cols = led.db.execute(f"PRAGMA table_info({t})").fetchall()
            # an INTEGER PRIMARY KEY column is NOT NULL though PRAGMA says notnull = 0
            out[t] = [(c["name"], bool(c["notnull"] or c["pk"]), bool(c["pk"])) for c in cols]
        return out


def _pg_schema(url: str) -> dict[str, list[tuple[str, bool, bool]]]:
    with psycopg.connect(url) as c:
        pk = {
            (r[0], r[1])
            for r in c.execute(
                "SELECT tc.table_name, kcu.column_name FROM information_schema.table_constraints tc "
                "JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name) "
                "WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema()"
            )
        }
        out: dict[str, list[tuple[str, bool, bool]]] = {}
        for table, col, nullable in c.execute(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name <> 'distrib_meta' AND column_name <> 'rowid' "
            "ORDER BY table_name, ordinal_position"
        ):
            out.setdefault(table, []).append((col, nullable == "NO", (table, col) in pk))
        return out


def _pg_indexes(url: str) -> set[str]:
    with psycopg.connect(url) as c:
        return {
            r[0]
            for r in c.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname NOT LIKE '%%_pkey'"
            )
        }


def test_one_schema_through_one_migration_history(pg_url: str, tmp_path: Path) -> None:
    with pg.open_postgres(pg_url):
        pass
    assert _pg_schema(pg_url) == _sqlite_schema(tmp_path / "l.sqlite")
    with ledger.open_ledger(tmp_path / "l.sqlite") as led:
        sqlite_indexes = {
            r[0]
            for r in led.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
    assert _pg_indexes(pg_url) == sqlite_indexes
    with psycopg.connect(pg_url) as c:
        assert c.execute("SELECT application_id, version FROM distrib_meta").fetchall() == [
            (ledger.APPLICATION_ID, ledger.VERSION)
        ]


def test_an_older_ledger_is_migrated_keeping_its_rows(pg_url: str) -> None:
    conn = pg.connect(pg_url)
    assert pg.migrate(conn, pg_url, upto=1) == 1
    conn.execute(
        "INSERT INTO editions (newsletter, subject, preheader, created, html, text) VALUES ('digest', 's', 'p', 'c', 'h', 't')"
    )
    conn.execute(
        "INSERT INTO email_deliveries (edition_id, address, status, updated) VALUES (1, 'a@x.example', 'claimed', 'u')"
    )
    conn.close()
    with pg.open_postgres(pg_url) as led:
        assert led.db.execute("SELECT id, markers FROM editions").fetchall() == [
            (1, "")
        ]  # migration 1 -> 2
        assert led.db.execute("SELECT address, run FROM email_deliveries").fetchall() == [
            ("a@x.example", None)
        ]  # 2 -> 3
        # the identity keeps numbering after rows inserted before
        led.db.execute(
            "INSERT INTO editions (newsletter, subject, preheader, created, html, text) VALUES ('digest', 's', 'p', 'c', 'h', 't')"
        )
        assert [r[0] for r in led.db.execute("SELECT id FROM editions ORDER BY id")] == [1, 2]
    with pg.open_postgres(pg_url) as led:  # opening again changes nothing
        assert led.db.execute("SELECT version FROM distrib_meta").fetchone() == (ledger.VERSION,)


def test_a_failed_migration_leaves_the_database_as_it_was(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = pg.connect(pg_url)
    pg.migrate(conn, pg_url, upto=1)
    conn.close()

    def broken(db: Any) -> None:
        db.execute("ALTER TABLE editions ADD COLUMN half TEXT")
        db.execute("ALTER TABLE no_such_table ADD COLUMN x TEXT")

    monkeypatch.setitem(ledger.MIGRATIONS, 1, broken)
    with pytest.raises(LedgerError) as e:
        pg.open_postgres(pg_url)
    assert "cannot migrate the ledger" in str(e.value) and "\n" not in str(e.value)
    with psycopg.connect(pg_url) as c:
        assert c.execute("SELECT version FROM distrib_meta").fetchone() == (1,)
        cols = [
            r[0]
            for r in c.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'editions'"
            )
        ]
        assert "half" not in cols


def test_translate_turns_sqlite_spellings_into_postgresql() -> None:
    assert pg.translate("CREATE TABLE t (k TEXT PRIMARY KEY, b BLOB, n INTEGER) WITHOUT ROWID") == (
        "CREATE TABLE t (k TEXT PRIMARY KEY, b BYTEA, n BIGINT)"
    )
    # a table with a rowid gets one it can name; an INTEGER PRIMARY KEY is the rowid
    assert "rowid BIGINT GENERATED BY DEFAULT AS IDENTITY" in pg.translate(
        "CREATE TABLE t (k TEXT)"
    )
    assert "CREATE TRIGGER t_id BEFORE INSERT ON t" in pg.translate(
        "CREATE TABLE t (id INTEGER PRIMARY KEY)"
    )
    assert pg.translate(
        "SELECT '?', a FROM t WHERE b = ? AND c LIKE 'x%' AND (run IS ? OR d IS NULL)"
    ) == (
        "SELECT '?', a FROM t WHERE b = %s AND c LIKE 'x%%' AND (run IS NOT DISTINCT FROM %s OR d IS NULL)"
    )
    assert pg.translate("LIKE 'x%'", params=False) == "LIKE 'x%'"
    assert pg.translate("BEGIN IMMEDIATE") == "BEGIN"


# --- errors: one line each, exit 2, never the password ---------------------------------


def _one_line(e: pytest.ExceptionInfo[LedgerError], *words: str) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    assert e.value.exit_code == EXIT_USAGE
    for w in words:
        assert w in msg, msg
    return msg


def test_unreachable_server(pg_cluster: Cluster) -> None:
    url = f"postgresql://u:secret-pw@127.0.0.1:{_free_port()}/db"
    with pytest.raises(LedgerError) as e:
        pg.open_postgres(url)
    msg = _one_line(
        e, "cannot reach the ledger database", "127.0.0.1", "Connection refused", "[ledger] url"
    )
    assert "secret-pw" not in msg


def test_bad_credentials(pg_cluster: Cluster) -> None:
    with pytest.raises(LedgerError) as e:
        pg.open_postgres(pg_cluster.url("postgres", password="wrong-secret"))
    msg = _one_line(e, "refused the credentials of user distrib_test", "password", "url_env")
    assert "wrong-secret" not in msg


def test_missing_database(pg_cluster: Cluster) -> None:
    with pytest.raises(LedgerError) as e:
        pg.open_postgres(pg_cluster.url("nosuchdb"))
    _one_line(e, "the database nosuchdb does not exist", "createdb nosuchdb")


def test_malformed_url() -> None:
    with pytest.raises(LedgerError) as e:
        pg.open_postgres("postgresql://u@127.0.0.1:1/db?sslmode=bogus")
    _one_line(e, "[ledger] url")


def test_a_database_of_another_application_is_refused_untouched(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE users (id int)")
    with pytest.raises(LedgerError) as e:
        pg.open_postgres(pg_url)
    _one_line(e, "is not a distrib ledger", "users", "empty database")
    with psycopg.connect(pg_url) as c:
        assert [
            r[0]
            for r in c.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ] == ["users"]


def test_a_foreign_distrib_meta_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE distrib_meta (application_id BIGINT, version BIGINT)")
        c.execute("INSERT INTO distrib_meta VALUES (42, 1)")
    with pytest.raises(LedgerError) as e:
        pg.open_postgres(pg_url)
    _one_line(e, "is not a distrib ledger")


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    with pg.open_postgres(pg_url) as led:
        led.db.execute("UPDATE distrib_meta SET version = ?", (ledger.VERSION + 1,))
    with pytest.raises(LedgerError) as e:
        pg.open_postgres(pg_url)
    _one_line(e, "newer distrib", f"schema {ledger.VERSION + 1}", "upgrade distrib")


# --- the run lock: an advisory lock, across processes ----------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from distrib.ledger.postgres import open_postgres
    led = open_postgres(sys.argv[1])
    getattr(led, sys.argv[2])()
    print("held", flush=True)
    sys.stdin.read()
    """
)


def _holder(url: str, how: str = "lock") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, how],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_two_hosts_one_run_lock_released_by_a_kill(pg_url: str) -> None:
    with pg.open_postgres(pg_url):
        pass  # migrate first, so both below only open
    other = _holder(pg_url)  # the other "host": its own process and connection
    try:
        with pg.open_postgres(pg_url) as led:
            assert led.lock_holder() is not None and f"pid {other.pid}" in str(led.lock_holder())
            with pytest.raises(LockedError) as e:
                led.lock()
            msg = str(e.value)
            assert "\n" not in msg and f"pid {other.pid}" in msg and "this run does nothing" in msg
            assert "secret" not in msg and urllib.parse.urlsplit(pg_url).password not in msg
            with pytest.raises(LockedError):  # nor may it claim beside the run
                led._exclusive()
            os.kill(other.pid, signal.SIGKILL)
            other.wait()
            for _ in range(100):  # the server notices the closed socket at once
                if led.lock_holder() is None:
                    break
                import time

                time.sleep(0.05)
            led.lock()
            assert led.lock_holder() is None  # held by this process
            assert led._exclusive() is True
            # a third process now cannot take it
            third = subprocess.run(
                [sys.executable, "-c", HOLDER, pg_url, "lock"],
                capture_output=True,
                text=True,
                input="",
            )
            assert third.returncode != 0 and "LockedError" in third.stderr
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def test_claimers_hold_the_lock_shared(pg_url: str) -> None:
    with pg.open_postgres(pg_url):
        pass
    claimer = _holder(pg_url, "_exclusive")
    try:
        with pg.open_postgres(pg_url) as a:
            assert a._exclusive() is False  # two claimers side by side
            a.unlock()
            with pytest.raises(LockedError):  # a run cannot start beside a claimer
                a.lock()
        assert claimer.stdin is not None
        claimer.stdin.close()
        claimer.wait()
        with pg.open_postgres(pg_url) as b:
            b.lock()
    finally:
        if claimer.poll() is None:
            claimer.kill()
            claimer.wait()


def test_unlock_and_close_release_the_lock(pg_url: str) -> None:
    a = pg.open_postgres(pg_url)
    a.lock()
    with pg.open_postgres(pg_url) as b:
        with pytest.raises(LockedError):
            b.lock()
        a.close()
        b.lock()
        b.unlock()
        with pg.open_postgres(pg_url) as c:
            c.lock()


def test_every_integer_primary_key_table_is_a_rowid_alias(tmp_path) -> None:
    """A table whose INTEGER PRIMARY KEY is SQLite's rowid must be named in
    ROWID_ALIASES, or PostgreSQL gives it a second rowid and `ledger copy` fails."""
    import re

    from distrib.ledger import open_ledger
    from distrib.ledger.postgres import ROWID_ALIASES

    with open_ledger(tmp_path / "distrib.sqlite") as led:
        rows = led.db.raw.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
        ).fetchall()
    found = {}
    for name, sql in rows:
        m = re.search(r"\b(\w+)\s+INTEGER PRIMARY KEY\b", sql)
        if m and "WITHOUT ROWID" not in sql:
            found[name] = m.group(1)
    assert found == ROWID_ALIASES
