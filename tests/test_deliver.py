"""The claim -> send -> mark loop over a real ledger, with small mailers written here."""

from __future__ import annotations

import csv
import io
import signal
import sqlite3
import subprocess
import sys
import time
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

from .conftest import run_distrib
from .test_end_to_end import _slow_smtp_server, smtp_config


@pytest.fixture
def message_for(make_config):
    """A real PreparedMessage for an edition recorded in ``ledger``."""

    def make(ledger):
        settings = load_config(make_config())
        edition = ledger.create_edition(
            "digest", ["k"], "s", "p", "<p>hi XDISTRIBUNSUBSCRIBEURLX</p>", "hi"
        )
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


def test_every_recipient_once_and_the_edition_finishes(open_any_ledger, clock, message_for):
    with open_any_ledger() as ledger:
        message = message_for(ledger)
        stream = io.StringIO()
        progress = Progress(50, stream, enabled=True)
        report = deliver_edition(
            ledger, NullMailer(None, None), message, people(50), progress=progress
        )  # type: ignore[arg-type]
        assert (report.sent, report.skipped, report.finished) == (50, 0, True)
        assert ledger.get_edition(1).status == "done"
        assert "edition 1: 50/50 (100%)" in stream.getvalue() and "msg/s" in stream.getvalue()
        again = deliver_edition(ledger, NullMailer(None, None), message, people(50))  # type: ignore[arg-type]
        assert (again.sent, again.skipped) == (0, 50)


def test_a_mailer_error_leaves_the_rest_for_the_next_run(open_any_ledger, clock, message_for):
    with open_any_ledger() as ledger:
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
        deliver_edition(
            ledger,
            NullMailer(None, None),
            message,
            people(5),
            progress=Progress(5, stream, enabled=False),
        )  # type: ignore[arg-type]
        assert stream.getvalue() == ""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_mid_send_finishes_the_messages_in_flight_and_the_rerun_sends_none_twice(
    make_config, tmp_path: Path, signum
):
    controller, server = _slow_smtp_server(delay=0.02)
    try:
        addresses = [f"reader{i:03d}@example.com" for i in range(120)]
        with open(tmp_path / "subscribers.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["email"])
            w.writerows([a] for a in addresses)
        path = smtp_config(
            make_config, server, 'recipients_file = "subscribers.csv"', "connections = 2"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "distrib", "send", "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 60
        while len(server.received) < 10 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        assert proc.poll() is None, "the send finished before it could be interrupted"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 1
        assert "interrupted; run again to finish" in err and "Traceback" not in err
        db = sqlite3.connect(tmp_path / "distrib.sqlite")
        in_flight = db.execute(
            "SELECT count(*) FROM email_deliveries WHERE status = 'claimed'"
        ).fetchone()[0]
        sent = db.execute("SELECT count(*) FROM email_deliveries WHERE status = 'sent'").fetchone()[
            0
        ]
        db.close()
        assert in_flight == 0  # everything that went out was recorded
        assert sent == len(server.received) < 120

        rerun = run_distrib("send", "--config", str(path))
        assert rerun.returncode == 0, rerun.stderr
        counts = {a: len(v) for a, v in server.by_recipient().items()}
        assert set(counts) == set(addresses)
        assert max(counts.values()) == 1  # nobody twice
    finally:
        controller.stop()  # type: ignore[attr-defined]
