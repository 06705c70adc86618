"""`distrib ledger copy`: an SQLite ledger into PostgreSQL and back is equal, row for row
(rowids too); a non-empty target is refused untouched; the copy carries on where the
original left off (nothing is sent again)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_distrib

psycopg = pytest.importorskip("psycopg")


def _dump_sqlite(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    try:
        out = {}
        for name, sql in db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ):
            rowid = "rowid, " if "WITHOUT ROWID" not in sql else ""
            out[name] = sorted(db.execute(f"SELECT {rowid}* FROM {name}").fetchall(), key=repr)
        return out
    finally:
        db.close()


def test_round_trip_sqlite_postgresql_sqlite_is_equal(
    make_config, tmp_path: Path, pg_url: str
) -> None:
    original = make_config('[ledger]\npath = "original.sqlite"\n')
    assert (
        run_distrib("run", "--config", str(original)).returncode == 0
    )  # editions, deliveries, posts
    assert (
        run_distrib(
            "subscribers", "add", "ana@example.com", "--name", "Ana Ñ", "--config", str(original)
        ).returncode
        == 0
    )
    assert (
        run_distrib("subscribers", "add", "bo@example.com", "--config", str(original)).returncode
        == 0
    )
    assert (
        run_distrib("subscribers", "remove", "bo@example.com", "--config", str(original)).returncode
        == 0
    )
    before = _dump_sqlite(tmp_path / "original.sqlite")
    assert (
        before["editions"]
        and before["email_deliveries"]
        and before["posts"]
        and before["subscribers"]
    )

    to_pg = run_distrib("ledger", "copy", "--to", pg_url, "--config", str(original))
    assert to_pg.returncode == 0, to_pg.stderr
    assert "copied to postgresql://distrib_test@" in to_pg.stdout and "subscribers" in to_pg.stdout
    assert pg_url.split(":")[2].split("@")[0] not in to_pg.stdout  # never the password

    on_pg = make_config('[ledger]\nurl_env = "DISTRIB_LEDGER_URL"\n', name="pg.toml")
    env = {"DISTRIB_LEDGER_URL": pg_url}
    back = run_distrib(
        "ledger", "copy", "--to", str(tmp_path / "back.sqlite"), "--config", str(on_pg), env=env
    )
    assert back.returncode == 0, back.stderr
    after = _dump_sqlite(tmp_path / "back.sqlite")
    # the run lock's note of who held it names the process that copied: all else is equal
    for dump in (before, after):
        dump["kv"] = [r for r in dump["kv"] if r[0] != "run:holder"]
    assert after == before

    # the PostgreSQL copy goes on where the original stopped: the edition is not sent again
    outbox = sorted((tmp_path / "outbox").glob("*.eml"))
    again = run_distrib("run", "--config", str(on_pg), env=env)
    assert again.returncode == 0, again.stderr
    assert sorted((tmp_path / "outbox").glob("*.eml")) == outbox
    # and the unsubscribed address stays suppressed there
    with psycopg.connect(pg_url) as db:
        assert db.execute(
            "SELECT status FROM subscribers WHERE address = 'bo@example.com'"
        ).fetchone() == ("unsubscribed",)


def test_a_non_empty_target_is_refused_untouched(make_config, tmp_path: Path, pg_url: str) -> None:
    config = make_config()
    assert run_distrib("run", "--config", str(config)).returncode == 0
    assert run_distrib("ledger", "copy", "--to", pg_url, "--config", str(config)).returncode == 0
    with psycopg.connect(pg_url) as db:
        counts = db.execute(
            "SELECT (SELECT count(*) FROM editions), (SELECT count(*) FROM posts)"
        ).fetchone()
    again = run_distrib("ledger", "copy", "--to", pg_url, "--config", str(config))
    assert again.returncode == 2
    assert (
        again.stderr.count("\n") == 1
        and "is not empty" in again.stderr
        and "in editions" in again.stderr
    )
    with psycopg.connect(pg_url) as db:
        assert (
            db.execute(
                "SELECT (SELECT count(*) FROM editions), (SELECT count(*) FROM posts)"
            ).fetchone()
            == counts
        )
    # an existing SQLite ledger (this one) as the target is refused the same way
    self_copy = run_distrib(
        "ledger", "copy", "--to", str(tmp_path / "distrib.sqlite"), "--config", str(config)
    )
    assert self_copy.returncode != 0 and "Traceback" not in self_copy.stderr
