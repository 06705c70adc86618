"""The claim -> send -> mark loop over a real ledger, with small mailers written here."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from distrib.adapters import Mailer
from distrib.config import load_config
from distrib.deliver import Progress, deliver_edition
from distrib.errors import DistribError
from distrib.ledger import open_ledger
from distrib.mailers.null import NullMailer
from distrib.model import Outcome, Recipient
from distrib.render.message import prepare_message


@pytest.fixture
def message_for(make_config):
    """A real PreparedMessage for an edition recorded in ``ledger``."""

    def make(ledger):
        settings = load_config(make_config())
        edition = ledger.create_edition("digest", ["k"], "s", "p", "<p>hi XDISTRIBUNSUBSCRIBEURLX</p>", "hi")
        return prepare_message(settings, edition, key=b"k")

    return make


class _DiesAfter(Mailer):
    """Sends ``n`` then fails the way a dropped server does (a DistribError)."""

    def __init__(self, n: int):
        super().__init__(None, None)  # type: ignore[arg-type]
        self.n = n

    def deliver(self, message, recipients, report):
        for i, r in enumerate(recipients):
            if i == self.n:
                raise DistribError("smtp 127.0.0.1:1: the server went away; the next run retries")
            report(r, Outcome.sent(f"<{i}@x>"))


def people(n: int) -> list[Recipient]:
    return [Recipient(f"p{i}@example.com") for i in range(n)]


def test_every_recipient_once_and_the_edition_finishes(tmp_path: Path, clock, message_for):
    with open_ledger(tmp_path / "l.sqlite") as ledger:
        message = message_for(ledger)
        stream = io.StringIO()
        progress = Progress(50, stream, enabled=True)
        report = deliver_edition(ledger, NullMailer(None, None), message, people(50), progress=progress)  # type: ignore[arg-type]
        assert (report.sent, report.skipped, report.finished) == (50, 0, True)
        assert ledger.get_edition(1).status == "done"
        assert "edition 1: 50/50 (100%)" in stream.getvalue() and "msg/s" in stream.getvalue()
        again = deliver_edition(ledger, NullMailer(None, None), message, people(50))  # type: ignore[arg-type]
        assert (again.sent, again.skipped) == (0, 50)


def test_a_mailer_error_leaves_the_rest_for_the_next_run(tmp_path: Path, clock, message_for):
    with open_ledger(tmp_path / "l.sqlite") as ledger:
        message = message_for(ledger)
        first = deliver_edition(ledger, _DiesAfter(10), message, people(30))  # type: ignore[arg-type]
        assert first.sent == 10 and not first.finished
        assert first.errors == ["smtp 127.0.0.1:1: the server went away; the next run retries"]
        assert ledger.email_counts(1)["claimed"] == 1  # the one in hand when it died
        second = deliver_edition(ledger, NullMailer(None, None), message, people(30))  # type: ignore[arg-type]
        assert (second.sent, second.skipped, second.finished) == (20, 10, True)


def test_progress_is_silent_under_cron(tmp_path: Path, clock, message_for):
    with open_ledger(tmp_path / "l.sqlite") as ledger:
        message = message_for(ledger)
        stream = io.StringIO()
        deliver_edition(ledger, NullMailer(None, None), message, people(5), progress=Progress(5, stream, enabled=False))  # type: ignore[arg-type]
        assert stream.getvalue() == ""
