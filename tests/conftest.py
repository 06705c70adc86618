"""Shared fixtures: a fixed clock, configs in tmp_path, a real SMTP server, the CLI.

Every test runs in its own tmp_path with DISTRIB_CONFIG unset, so a developer's own
config never leaks in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXED_NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DISTRIB_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """Freeze distrib's clock at FIXED_NOW; set ``clock[0]`` to move it."""
    from distrib import ledger

    holder = [FIXED_NOW]
    monkeypatch.setattr(ledger, "now", lambda: holder[0])
    return holder


def write_config(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def make_config(tmp_path: Path):
    """Write a config: the minimal valid one plus ``extra`` TOML appended."""

    def make(
        extra: str = "",
        *,
        sources: str | None = None,
        email: str | None = None,
        name: str = "distrib.toml",
    ) -> Path:
        if sources is None:
            sources = '[[sources]]\nname = "newsroom"\ntype = "sample"\n'
        if email is None:
            email = textwrap.dedent(
                """
                [email]
                mailer = "outbox"
                from = "Test News <news@test.example>"
                recipients = ["a@example.com", "b@example.com"]
                unsubscribe_url = "https://test.example/unsubscribe?token={token}"
                """
            )
        text = (
            textwrap.dedent(
                """
            [site]
            name = "Test News"
            url = "https://test.example/"
            postal_address = "1 Test Street, Testville"
            """
            )
            + "\n"
            + sources
            + "\n"
            + email
            + "\n"
            + textwrap.dedent(extra)
        )
        return write_config(tmp_path / name, text)

    return make


# --- a real SMTP server ------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class SmtpServer:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)

    def by_recipient(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for r in self.received:
            for rcpt in r.rcpt_tos:
                out.setdefault(rcpt.lower(), []).append(r)
        return out


class _Handler:
    def __init__(self, server: SmtpServer, delay: float = 0.0):
        self.server = server
        self.delay = delay
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        import asyncio

        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.server.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content or envelope.content),
                )
            )
        return "250 2.0.0 OK queued"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1 at a free port, recording every message."""
    from aiosmtpd.controller import Controller

    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(_Handler(server), hostname="127.0.0.1", port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


# --- the CLI as a user runs it -------------------------------------------------------


def run_distrib(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m distrib ARGS` in a subprocess, as cron would run it."""
    full_env = {k: v for k, v in os.environ.items() if k != "DISTRIB_CONFIG"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "distrib", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# A throwaway PostgreSQL cluster (session) and a fresh database per test, for the
# ledger's PostgreSQL backend; they skip, saying what to install, where it is absent.
from tests.pgcluster import pg_cluster, pg_url  # noqa: E402, F401


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_backend(request: pytest.FixtureRequest) -> str:
    """Run the test once per ledger backend; the PostgreSQL run skips where it is absent."""
    if request.param == "postgresql":
        request.getfixturevalue("pg_url")
    return str(request.param)


@pytest.fixture
def open_any_ledger(ledger_backend: str, request: pytest.FixtureRequest, tmp_path: Path):
    """Open this test's ledger on the backend of ``ledger_backend`` (each call opens it
    again: a second process's view): an SQLite file in tmp_path, or the test's database."""
    if ledger_backend == "postgresql":
        from distrib.ledger.postgres import open_postgres

        url = request.getfixturevalue("pg_url")
        return lambda: open_postgres(url)
    from distrib.ledger import open_ledger

    return lambda: open_ledger(tmp_path / "l.sqlite")
