"""The ledger: schema, migrations, refusal of foreign or newer files, claims, the run lock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from distrib.errors import LedgerError, LockedError
from distrib.ledger import APPLICATION_ID, VERSION, open_ledger
from distrib.model import Outcome, Post


def test_new_ledger_is_marked_ours_and_current(tmp_path: Path):
    with open_ledger(tmp_path / "l.sqlite") as ledger:
        assert ledger.db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert ledger.db.execute("PRAGMA user_version").fetchone()[0] == VERSION
        assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_foreign_and_newer_files_are_refused(tmp_path: Path):
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE x (y)")
    db.close()
    with pytest.raises(LedgerError, match="is not a distrib ledger"):
        open_ledger(other)
    newer = tmp_path / "newer.sqlite"
    open_ledger(newer).close()
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version = {VERSION + 1}")
    db.close()
    with pytest.raises(LedgerError, match="newer distrib"):
        open_ledger(newer)
    text = tmp_path / "text.sqlite"
    text.write_text("hello, this is not a database" * 100)
    with pytest.raises(LedgerError, match="not a distrib ledger"):
        open_ledger(text)


def test_a_ledger_path_that_cannot_be_a_file_names_the_culprit(tmp_path: Path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(LedgerError) as e:
        open_ledger(tmp_path / "a-file" / "sub" / "distrib.sqlite")
    assert str(e.value) == (
        f"cannot open the ledger {tmp_path / 'a-file' / 'sub' / 'distrib.sqlite'}: {tmp_path / 'a-file'} is a file, "
        "not a folder; set [ledger] path to a file in a folder distrib can write"
    )
    with pytest.raises(LedgerError, match=r": that is a folder; set \[ledger\] path"):
        open_ledger(tmp_path)


def test_claims_never_twice(open_any_ledger, clock):
    with open_any_ledger() as ledger:
        ed = ledger.create_edition("digest", ["k1"], "s", "p", "<html/>", "t")
        assert ledger.claim_email(ed.id, "A@Example.com")
        # still claimed (a run died in flight): claimable again, the only duplicate window
        assert ledger.claim_email(ed.id, "a@example.com")
        ledger.mark_email(ed.id, "a@example.com", Outcome.sent("<id@x>"))
        assert not ledger.claim_email(ed.id, "a@example.com")
        assert ledger.claim_email(ed.id, "b@example.com")
        ledger.mark_email(
            ed.id, "b@example.com", Outcome.deferred("451 try later", retry_after=600)
        )
        assert not ledger.claim_email(ed.id, "b@example.com")  # not before its time
        from datetime import timedelta

        clock[0] = clock[0] + timedelta(minutes=11)
        assert ledger.claim_email(ed.id, "b@example.com")
        ledger.mark_email(
            ed.id, "b@example.com", Outcome.failed("550 5.1.1 no such user", bounce=True)
        )
        assert ledger.is_suppressed("b@example.com")
        assert ledger.email_counts(ed.id) == {"claimed": 0, "sent": 1, "failed": 1, "deferred": 0}


def test_posts_keep_first_seen(open_any_ledger, clock):
    from datetime import timedelta

    post = Post(key="k", url="https://x.example/1", title="T", source="s")
    with open_any_ledger() as ledger:
        first = ledger.record_posts([post])["k"]
        clock[0] = clock[0] + timedelta(days=1)
        again = ledger.record_posts([post])["k"]
        assert first == again
        assert ledger.get_post("k") == post


def test_second_process_is_locked_out(tmp_path: Path):
    path = tmp_path / "l.sqlite"
    with open_ledger(path) as ledger:
        ledger.lock()
        code = textwrap.dedent(
            f"""
            from distrib.ledger import open_ledger
            from distrib.errors import LockedError
            try:
                open_ledger({str(path)!r}).lock()
            except LockedError as e:
                print("LOCKED", e)
            """
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        assert out.startswith("LOCKED another distrib run (pid")
    # released on close: a later run takes it
    with open_ledger(path) as ledger:
        ledger.lock()
    with pytest.raises(LockedError):
        a = open_ledger(path)
        a.lock()
        b = open_ledger(path)
        try:
            b.lock()
        finally:
            a.close()
            b.close()


def test_kv_put_new_keeps_the_first_value(open_any_ledger):
    """Two processes making a value at once (two serve replicas making the signing key)
    end up with the same one: the first stored."""
    a, b = open_any_ledger(), open_any_ledger()
    with a, b:
        assert a.kv_put_new("k", "first") == "first"
        assert b.kv_put_new("k", "second") == "first"
        assert a.kv_get("k") == b.kv_get("k") == "first"
