"""The one-click unsubscribe endpoint, run as a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distrib import subscribers as subs
from distrib.errors import ConfigError
from distrib.ledger import open_ledger
from distrib.serve import make_server

# The first token format, as in editions sent before tokens became opaque: still valid
# (the opaque format's own tests are in tests/serve/).
from distrib.unsubscribe import make_legacy_token as make_token
from distrib.unsubscribe import signing_key

SECRET = "s3cret-for-tests"


@pytest.fixture
def endpoint(
    tmp_path: Path, settings_factory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, bytes, Path]]:
    monkeypatch.setenv("DISTRIB_TEST_SECRET", SECRET)
    settings = settings_factory(
        email={
            "unsubscribe_url": "https://news.example/letters/unsubscribe?token={token}",
            "secret_env": "DISTRIB_TEST_SECRET",
        },
        site={"language": "de"},
    )
    ledger_path = tmp_path / "distrib.sqlite"
    with open_ledger(ledger_path) as led:
        subs.add(led, "reader@example.org", "Reader")
        subs.add(led, "other@example.org")
        key = signing_key(settings, led)
    server = make_server(settings, ledger_path, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.url, key, ledger_path
    server.shutdown()
    server.server_close()
    thread.join(5)


def status_of(ledger_path: Path, address: str) -> str:
    with open_ledger(ledger_path) as led:
        row = subs.get(led, address)
        return row.status if row else "unknown"


def test_one_click_post_unsubscribes_at_once_without_redirect(endpoint) -> None:
    url, key, ledger_path = endpoint
    token = make_token(key, "reader@example.org")
    r = httpx.post(
        f"{url}/unsubscribe",  # the proxy stripped the public /letters prefix
        params={"token": token},
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert r.status_code == 200
    assert "location" not in r.headers
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "reader@example.org" in r.text and "erhält keine E-Mails" in r.text
    assert status_of(ledger_path, "reader@example.org") == "unsubscribed"
    assert status_of(ledger_path, "other@example.org") == "active"

    # A second POST (the provider retries) is harmless and still 200.
    again = httpx.post(
        f"{url}/letters/unsubscribe", params={"token": token}, content=b"List-Unsubscribe=One-Click"
    )
    assert again.status_code == 200
    with open_ledger(ledger_path) as led:
        assert led.get_subscriber("reader@example.org")["reason"] == "one-click"


def test_multipart_one_click_post(endpoint) -> None:
    url, key, ledger_path = endpoint
    token = make_token(key, "other@example.org")
    r = httpx.post(
        f"{url}/letters/unsubscribe?token={token}", files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert r.status_code == 200
    assert status_of(ledger_path, "other@example.org") == "unsubscribed"


def test_get_shows_a_form_and_never_unsubscribes(endpoint) -> None:
    url, key, ledger_path = endpoint
    token = make_token(key, "reader@example.org")
    for _ in range(3):  # a link scanner prefetching, several times
        r = httpx.get(f"{url}/letters/unsubscribe", params={"token": token})
        assert r.status_code == 200
    assert '<form method="post">' in r.text
    assert 'name="List-Unsubscribe" value="One-Click"' in r.text
    assert 'lang="de"' in r.text and "Abmelden" in r.text
    assert status_of(ledger_path, "reader@example.org") == "active"


def test_forged_altered_and_missing_tokens_are_refused(endpoint) -> None:
    url, key, ledger_path = endpoint
    good = make_token(key, "reader@example.org")
    forged = make_token(b"not-the-key", "reader@example.org")
    # the address part swapped for another address, the signature kept
    altered = make_token(key, "other@example.org").split(".")[0] + "." + good.split(".")[1]
    for token in (forged, altered, good[:-2], "garbage", ""):
        for method in ("GET", "POST"):
            r = httpx.request(method, f"{url}/letters/unsubscribe", params={"token": token})
            assert r.status_code == 400, (method, token)
            assert r.headers["content-type"] == "text/plain; charset=utf-8"
            assert "ungültig" in r.text
    r = httpx.post(f"{url}/letters/unsubscribe")
    assert r.status_code == 400
    assert status_of(ledger_path, "reader@example.org") == "active"
    assert status_of(ledger_path, "other@example.org") == "active"


def test_a_token_edited_by_one_character_is_refused(endpoint) -> None:
    url, key, ledger_path = endpoint
    good = make_token(key, "reader@example.org")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # The last of 22 characters carries 2 bits of the 16-byte signature and 4 unused
    # ones: flipping an unused bit decodes to the same bytes, but it is not our token.
    same_bytes = good[:-1] + alphabet[alphabet.index(good[-1]) ^ 1]
    stray = good[:5] + "!" + good[5:]
    edits = [
        good[:i] + alphabet[(alphabet.index(c) + 1) % 64] + good[i + 1 :]
        for i, c in enumerate(good)
        if c != "."
    ]
    for token in (same_bytes, stray, *edits):
        r = httpx.post(
            f"{url}/letters/unsubscribe",
            params={"token": token},
            content=b"List-Unsubscribe=One-Click",
        )
        assert r.status_code == 400, token
    assert status_of(ledger_path, "reader@example.org") == "active"
    # Percent-encoding is only transport: the same token, encoded, works.
    encoded = "".join(f"%{ord(c):02X}" if c in "._-" else c for c in good)
    r = httpx.post(
        f"{url}/letters/unsubscribe?token={encoded}", content=b"List-Unsubscribe=One-Click"
    )
    assert r.status_code == 200
    assert status_of(ledger_path, "reader@example.org") == "unsubscribed"


def test_head_answers_like_get_without_a_body_and_never_unsubscribes(endpoint) -> None:
    url, key, ledger_path = endpoint
    token = make_token(key, "reader@example.org")
    get = httpx.get(f"{url}/letters/unsubscribe", params={"token": token})
    head = httpx.head(f"{url}/letters/unsubscribe", params={"token": token})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == "text/html; charset=utf-8"
    assert httpx.head(f"{url}/letters/unsubscribe", params={"token": "garbage"}).status_code == 400
    assert httpx.head(f"{url}/healthz").status_code == 200
    assert status_of(ledger_path, "reader@example.org") == "active"


def test_healthz_and_unknown_paths(endpoint) -> None:
    url, _, _ = endpoint
    r = httpx.get(f"{url}/healthz")
    assert (r.status_code, r.text) == (200, "ok\n")
    assert httpx.get(f"{url}/elsewhere").status_code == 404


def test_escapes_the_address_in_pages(tmp_path: Path, settings_factory) -> None:
    settings = settings_factory(email={"unsubscribe_url": "https://news.example/u/{token}/confirm"})
    server = make_server(settings, tmp_path / "l.sqlite", "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        token = make_token(server.key, "<b>x</b>@example.org")
        r = httpx.get(f"{server.url}/u/{token}/confirm")
        assert (
            r.status_code == 200
            and "<b>x</b>" not in r.text
            and "&lt;b&gt;x&lt;/b&gt;@example.org" in r.text
        )
        assert "Stop sending emails from <strong>Harbour Notes</strong>" in r.text
        assert httpx.post(f"{server.url}/u/{token}/confirm").status_code == 200
        assert server.ledger.is_suppressed("<b>x</b>@example.org")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_bad_unsubscribe_url_is_a_config_error(tmp_path: Path, settings_factory) -> None:
    with pytest.raises(ConfigError, match="email.unsubscribe_url: missing"):
        make_server(settings_factory(), tmp_path / "l.sqlite", "127.0.0.1", 0)
    with pytest.raises(ConfigError, match="has no {token}"):
        make_server(
            settings_factory(email={"unsubscribe_url": "https://x.example/u"}),
            tmp_path / "l.sqlite",
            "127.0.0.1",
            0,
        )
