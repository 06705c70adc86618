"""Ledger.checkpoints_in_background: the SMTP mailer's commits stay single, durable rows."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from distrib.ledger import open_ledger
from distrib.model import Outcome


def test_commits_inside_are_visible_at_once_and_the_autocheckpoint_comes_back(tmp_path: Path):
    path = tmp_path / "l.sqlite"
    with open_ledger(path) as ledger:
        ed = ledger.create_edition("digest", ["k1"], "s", "p", "<html/>", "t")
        before = ledger.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        other = sqlite3.connect(path)
        with ledger.checkpoints_in_background(every=0.001):
            assert any(t.name == "ledger-checkpoint" for t in threading.enumerate())
            for i in range(300):
                address = f"reader{i}@example.com"
                assert ledger.claim_email(ed.id, address)
                # each claim is committed on its own: another process sees it at once
                row = other.execute(
                    "SELECT status FROM email_deliveries WHERE address = ?", (address,)
                ).fetchone()
                assert row == ("claimed",)
                ledger.mark_email(ed.id, address, Outcome.sent(f"<{i}@x>"))
        other.close()
        assert not any(t.name == "ledger-checkpoint" for t in threading.enumerate())
        assert ledger.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == before
        assert ledger.email_counts(ed.id)["sent"] == 300
    # everything is in the file after a clean close
    with open_ledger(path) as ledger:
        assert ledger.email_counts(ed.id)["sent"] == 300


def test_an_error_inside_still_stops_the_thread(tmp_path: Path):
    with open_ledger(tmp_path / "l.sqlite") as ledger:
        try:
            with ledger.checkpoints_in_background():
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        assert not any(t.name == "ledger-checkpoint" for t in threading.enumerate())
        assert ledger.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
