"""The public base URL with a path (https://news.example/news): a reverse proxy may pass
the path on (/news/subscribe) or strip it (/subscribe); `distrib serve` answers both, and
only a whole leading segment is taken off."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from tests.conftest import SmtpServer

from .conftest import Service, _start


@pytest.fixture
def under_path(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    yield from _start(
        tmp_path, smtp_server, monkeypatch, '[signup]\nbase_url = "https://news.example/news"\n'
    )


def _post(service: Service, path: str, address: str) -> int:
    r = service.http.post(path, data={"email": address}, headers={"Accept": "application/json"})
    return r.status_code


def test_the_routes_answer_with_and_without_the_base_path(under_path: Service) -> None:
    assert _post(under_path, "/news/subscribe", "ana@example.org") == 200
    assert _post(under_path, "/subscribe", "ben@example.org") == 200
    under_path.wait_for_mail(2)
    msg = email.message_from_bytes(under_path.smtp.received[0].data, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"https://news\.example(/news/confirm\?token=\S+)", text)
    assert link, "the confirmation link is under the public base path"
    page = under_path.http.get(link.group(1))
    assert page.status_code == 200 and "<button" in page.text
    assert under_path.http.get("/news/healthz").status_code == 200
    assert under_path.http.get("/news").status_code == 404  # the prefix alone is no route


def test_only_a_whole_leading_segment_is_taken(under_path: Service) -> None:
    assert _post(under_path, "/newsletter/subscribe", "cy@example.org") == 404
    assert _post(under_path, "/other/news/subscribe", "cy@example.org") == 404
    assert _post(under_path, "/news/news/subscribe", "cy@example.org") == 404
    assert under_path.status("cy@example.org") is None
