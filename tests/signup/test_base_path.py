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


@pytest.fixture
def under_a_non_ascii_path(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    yield from _start(
        tmp_path,
        smtp_server,
        monkeypatch,
        '[signup]\nbase_url = "https://news.example/lettre d\'été"\n',
    )


def test_a_base_path_written_unencoded_answers_as_browsers_send_it(
    under_a_non_ascii_path: Service,
) -> None:
    """A browser sends the path of https://news.example/lettre d'été percent-encoded;
    a proxy passing it on unstripped still reaches the routes."""
    service = under_a_non_ascii_path
    assert _post(service, "/lettre%20d'%C3%A9t%C3%A9/subscribe", "ana@example.org") == 200
    assert _post(service, "/lettre%20d%27%C3%A9t%C3%A9/subscribe", "ben@example.org") == 200
    assert _post(service, "/subscribe", "cy@example.org") == 200
    assert service.http.get("/lettre%20d'%C3%A9t%C3%A9/healthz").status_code == 200


def test_an_absolute_form_target_is_taken_off_its_base_path_too(under_path: Service) -> None:
    """HTTP/1.1 servers accept ``POST http://host/news/subscribe`` (RFC 9112 3.2.2) as
    they accept ``POST http://host/subscribe``."""
    import socket
    from urllib.parse import urlsplit

    port = urlsplit(under_path.url).port
    lines = []
    for i, target in enumerate(
        ("http://news.example/news/subscribe", "http://news.example/subscribe")
    ):
        body = f"email=abs{i}%40example.org".encode()
        head = (
            f"POST {target} HTTP/1.1\r\nHost: news.example\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port or 80), timeout=10) as sock:
            sock.sendall(head.encode() + body)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines.append(data.split(b"\r\n", 1)[0])
    assert lines == [b"HTTP/1.1 200 OK"] * 2
