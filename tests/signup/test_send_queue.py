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
