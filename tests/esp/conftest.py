"""Fixtures for the HTTP ESP and hand-off mailer tests.

The mailers run against real HTTP servers on 127.0.0.1 (pytest-httpserver) that answer
like the providers' documented APIs, and SES against moto.  The prepared message is
built by distrib's own message builder from a small edition.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from distrib.adapters import Context
from distrib.config import EMAIL, SITE, Ctx, Section, Settings, Table, validate_table
from distrib.ledger import Ledger, open_ledger
from distrib.model import PLACEHOLDER_EMAIL, PLACEHOLDER_UNSUBSCRIBE_URL, Outcome, Recipient
from distrib.render.message import PreparedMessage, prepare_message

HTML = (
    "<!doctype html><html><body><h1>Harbour Notes</h1><p>Hello "
    f'{PLACEHOLDER_EMAIL}</p><p><a href="{PLACEHOLDER_UNSUBSCRIBE_URL}">Unsubscribe</a></p>'
    "</body></html>"
)
TEXT = f"Harbour Notes\n\nHello {PLACEHOLDER_EMAIL}\nUnsubscribe: {PLACEHOLDER_UNSUBSCRIBE_URL}\n"


def settings_for(
    tmp_path: Path, mailer: str, options: dict[str, Any], **email: Any
) -> tuple[Settings, Section]:
    from distrib import registry

    ctx = Ctx(base_dir=tmp_path)
    cls = registry.load("distrib.mailers", mailer)
    email_data = {
        "mailer": mailer,
        "from": "Harbour Notes <news@news.example>",
        "reply_to": "Desk <desk@news.example>",
        "unsubscribe_url": "https://news.example/unsubscribe?token={token}",
    } | email
    data = {
        "site": validate_table(
            SITE, {"name": "Harbour Notes", "url": "https://news.example/"}, "site", ctx
        ),
        "email": validate_table(EMAIL, email_data, "email", ctx),
    }
    data["email"][mailer] = validate_table(Table(cls.options), options, f"email.{mailer}", ctx)
    assert not ctx.problems, ctx.problems
    settings = Settings(path=tmp_path / "distrib.toml", data=data)
    return settings, settings.email[mailer]


@dataclass
class Env:
    settings: Settings
    options: Section
    ledger: Ledger
    message: PreparedMessage
    ctx: Context

    def mailer(self) -> Any:
        from distrib import registry

        cls = registry.load("distrib.mailers", self.settings.email.mailer)
        return cls(self.options, self.ctx)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = open_ledger(tmp_path / "distrib.sqlite")
    yield led
    led.close()


@pytest.fixture
def make_env(tmp_path: Path, ledger: Ledger):
    def make(mailer: str, options: dict[str, Any], **email: Any) -> Env:
        settings, section = settings_for(tmp_path, mailer, options, **email)
        edition = ledger.create_edition(
            "digest", ["post-1"], "Harbour Notes: the tide tables", "Tides", HTML, TEXT
        )
        message = prepare_message(
            settings, edition, key=b"k", date=datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
        )
        ctx = Context(
            settings=settings, now=datetime(2026, 11, 20, 9, 30, tzinfo=UTC), ledger=ledger
        )
        return Env(settings, section, ledger, message, ctx)

    return make


@dataclass
class Run:
    """Drives ``deliver`` and checks the contract: lazy pulls, one report per pulled
    recipient, reports in the calling thread, never more than ``window`` in flight."""

    window: int
    pulled: list[Recipient] = field(default_factory=list)
    reported: list[tuple[Recipient, Outcome]] = field(default_factory=list)
    max_in_flight: int = 0
    thread: threading.Thread = field(default_factory=threading.current_thread)

    def recipients(self, items: list[Recipient]) -> Iterator[Recipient]:
        for r in items:
            self.pulled.append(r)
            self.max_in_flight = max(self.max_in_flight, len(self.pulled) - len(self.reported))
            yield r

    def report(self, recipient: Recipient, outcome: Outcome) -> None:
        assert threading.current_thread() is self.thread
        self.reported.append((recipient, outcome))

    def deliver(self, mailer: Any, message: PreparedMessage, items: list[Recipient]) -> None:
        self.thread = threading.current_thread()
        try:
            with mailer:
                mailer.deliver(message, self.recipients(items), self.report)
        finally:
            assert sorted(r.email for r, _ in self.reported) == sorted(r.email for r in self.pulled)
            assert self.max_in_flight <= self.window

    def outcome(self, email: str) -> Outcome:
        return next(o for r, o in self.reported if r.email == email)


def people(n: int) -> list[Recipient]:
    return [Recipient(f"reader{i}@example.org", f"Reader {i}") for i in range(n)]


@pytest.fixture
def threaded_server() -> Iterator[Any]:
    """A pytest-httpserver on 127.0.0.1 that answers requests in parallel, as a provider
    does: a slow answer to one request does not hold up the next (a reconciliation
    search after a timeout)."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()
