"""A burst of signups is sent whole: `distrib run` and serve's sender thread send the
queue batch after batch until it is empty (one batch of 50 left the rest waiting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrib.config import load_config
from distrib.ledger import open_ledger
from tests.conftest import SmtpServer
from tests.signup.conftest import SECRET, _config


def test_the_whole_queue_goes_out_once(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
):
    from distrib.signup import send_queued

    monkeypatch.setenv("DISTRIB_SIGNUP_SECRET", SECRET)
    settings = load_config(_config(tmp_path, smtp_server))
    addresses = [f"burst{i}@example.org" for i in range(120)]
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        for a in addresses:
            led.queue_signup(a, "", [])
        assert send_queued(settings, led) == 120
        assert led.outbox_pending() == 0
        assert send_queued(settings, led) == 0
    got = smtp_server.by_recipient()
    assert sorted(got) == sorted(addresses)
    assert all(len(v) == 1 for v in got.values())


def test_rows_another_sender_holds_are_not_sent_twice(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
):
    """serve's sender thread beside `distrib run` (or two serve replicas on one
    PostgreSQL ledger): what one claimed is in flight, and the other leaves it alone
    until the claim is so old that its sender must be dead."""
    from datetime import timedelta

    import distrib.ledger
    from distrib.ledger.signups import OUTBOX_LEASE
    from distrib.signup import send_queued

    monkeypatch.setenv("DISTRIB_SIGNUP_SECRET", SECRET)
    settings = load_config(_config(tmp_path, smtp_server))
    path = tmp_path / "distrib.sqlite"
    with open_ledger(path) as first, open_ledger(path) as second:
        first.queue_signup("inflight@example.org", "", [])
        held = first.claim_outbox()  # the first sender is sending it now
        assert [r["address"] for r in held] == ["inflight@example.org"]
        second.queue_signup("other@example.org", "", [])
        assert send_queued(settings, second) == 1
        assert [r.rcpt_tos for r in smtp_server.received] == [["other@example.org"]]
        later = distrib.ledger.now() + OUTBOX_LEASE + timedelta(seconds=1)
        monkeypatch.setattr(distrib.ledger, "now", lambda: later)
        assert send_queued(settings, second) == 1  # the first sender died holding it
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [
        "inflight@example.org",
        "other@example.org",
    ]


def test_two_senders_never_claim_the_same_row(open_any_ledger):
    """On both backends: two ledger connections claiming in turn share the queue out."""
    with open_any_ledger() as first, open_any_ledger() as second:
        for i in range(5):
            first.queue_signup(f"q{i}@example.org", "", [])
        a = [r["address"] for r in first.claim_outbox(limit=3)]
        b = [r["address"] for r in second.claim_outbox(limit=50)]
        assert a == ["q0@example.org", "q1@example.org", "q2@example.org"]
        assert b == ["q3@example.org", "q4@example.org"]
        assert first.claim_outbox() == [] and second.claim_outbox() == []
