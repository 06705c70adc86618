"""Fixtures of the signup and webhook tests: a real `distrib serve` in a thread with an
SMTP mailer pointed at aiosmtpd on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distrib.config import load_config
from distrib.ledger import open_ledger
from distrib.serve import make_server
from distrib.unsubscribe import signing_key
from tests.conftest import SmtpServer

SECRET = "s3cret-for-signup-tests"


FEED_SOURCE = """
[[sources]]
name = "blog"
type = "feed"
url = "https://news.example/feed.xml"
"""


def _config(tmp_path: Path, smtp: SmtpServer, extra: str = "", sources: str = FEED_SOURCE) -> Path:
    path = tmp_path / "distrib.toml"
    path.write_text(
        f"""
[site]
name = "Harbour Notes"
url = "https://news.example/"
postal_address = "1 Quay Street, Harbourtown"
{sources}
[email]
mailer = "smtp"
from = "Harbour Notes <news@news.example>"
secret_env = "DISTRIB_SIGNUP_SECRET"
unsubscribe_url = "https://news.example/unsubscribe?token={{token}}"
[email.smtp]
host = "{smtp.host}"
port = {smtp.port}
security = "none"
{extra}
""",
        encoding="utf-8",
    )
    return path


class Service:
    def __init__(self, url: str, ledger_path: Path, key: bytes, smtp: SmtpServer):
        self.url = url
        self.ledger_path = ledger_path
        self.key = key
        self.smtp = smtp
        self.http = httpx.Client(base_url=url, timeout=10)

    def subscribe(self, **fields: str | list[str]) -> httpx.Response:
        return self.http.post("/subscribe", data=fields, headers={"Accept": "application/json"})

    def status(self, address: str) -> str | None:
        with open_ledger(self.ledger_path) as led:
            row = led.get_subscriber(address)
            return row["status"] if row else None

    def wait_for_mail(self, n: int, limit: float = 20.0) -> None:
        deadline = time.monotonic() + limit
        while len(self.smtp.received) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.smtp.received) >= n, f"{len(self.smtp.received)} messages, wanted {n}"


def _start(
    tmp_path: Path,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    extra: str = "",
    sources: str = FEED_SOURCE,
) -> Iterator[Service]:
    monkeypatch.setenv("DISTRIB_SIGNUP_SECRET", SECRET)
    settings = load_config(_config(tmp_path, smtp, extra, sources))
    ledger_path = tmp_path / "distrib.sqlite"
    with open_ledger(ledger_path) as led:
        key = signing_key(settings, led)
    server = make_server(settings, ledger_path, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    service = Service(server.url, ledger_path, key, smtp)
    try:
        yield service
    finally:
        service.http.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def service(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    yield from _start(tmp_path, smtp_server, monkeypatch)
