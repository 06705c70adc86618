"""Fixtures for the mailer and message tests: settings, editions, a context.

The SMTP servers (real aiosmtpd on 127.0.0.1) live in smtpservers.py beside this file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from distrib.adapters import Context
from distrib.config import Settings
from distrib.model import PLACEHOLDER_EMAIL, PLACEHOLDER_UNSUBSCRIBE_URL, Edition

KEY = b"test-signing-key"


def make_settings(tmp_path: Path, **email: Any) -> Settings:
    data: dict[str, Any] = {
        "site": {"name": "The Lantern Gazette", "url": "https://gazette.example.org/"},
        "email": {
            "mailer": "outbox",
            "from": "The Lantern <news@gazette.example.org>",
            "reply_to": None,
            "unsubscribe_url": "https://gazette.example.org/unsubscribe?token={token}",
            "unsubscribe_mailto": None,
            "secret_env": None,
        },
    }
    data["email"].update(email)
    return Settings(path=tmp_path / "distrib.toml", data=data)


def make_edition(
    subject: str = "The Lantern Gazette: Harbour lights return",
    *,
    edition_id: int = 3,
    html: str | None = None,
    text: str | None = None,
) -> Edition:
    if text is None:
        text = (
            "THE LANTERN GAZETTE\n\n"
            "Harbour lights return\nhttps://gazette.example.org/harbour-lights\n"
            "The old lamps are back on the pier.\n"
            ".A line that starts with a dot\n"
            "From the archive: a line that starts with From\n\n"
            f"Sent to {PLACEHOLDER_EMAIL}. Unsubscribe: {PLACEHOLDER_UNSUBSCRIBE_URL}\n"
        )
    if html is None:
        html = (
            "<!doctype html><html><body>"
            + "".join(
                f'<h2><a href="https://gazette.example.org/p/{i}">Story {i} – café ☕</a></h2>'
                f"<p>{'Lorem ipsum dolor sit amet, consectetur adipiscing elit. ' * 8}</p>\n"
                for i in range(20)
            )
            + f'<p>Sent to {PLACEHOLDER_EMAIL}. <a href="{PLACEHOLDER_UNSUBSCRIBE_URL}">Unsubscribe</a></p>'
            "</body></html>\n"
        )
    return Edition(
        id=edition_id,
        newsletter="digest",
        post_keys=("a", "b"),
        subject=subject,
        preheader="",
        created=datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
        html=html,
        text=text,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def edition() -> Edition:
    return make_edition()


@pytest.fixture
def ctx(settings: Settings) -> Context:
    return Context(settings=settings, now=datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
