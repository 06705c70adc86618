"""Tokens: opaque, one purpose each, naming their newsletter; a token leaves its own
newsletter only, and "unsubscribe from all" is a separate button.  First-format tokens
(in editions already sent) still unsubscribe, from everything, as they always did."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from distrib import subscribers as subs
from distrib.ledger import open_ledger
from distrib.model import Edition, Recipient
from distrib.render.message import prepare_message
from distrib.unsubscribe import (
    PURPOSES,
    Tokens,
    make_legacy_token,
    make_token,
    read_token,
    verify_token,
)
from tests.serve.conftest import _endpoint
from tests.subscribers.conftest import make_settings

KEY = b"k" * 32
ADDRESS = "Reader.One+news@Example.org"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_a_token_does_not_show_the_address_or_the_newsletter() -> None:
    token = make_token(KEY, ADDRESS, "tech")
    b64 = base64.urlsafe_b64encode(b"reader.one+news@example.org").decode().rstrip("=")
    for leak in (
        "reader",
        "example",
        "tech",
        b64[:12],
        base64.urlsafe_b64encode(b"tech").decode()[:4],
    ):
        assert leak.lower() not in token.lower()
    found = read_token(KEY, token)
    assert found is not None
    assert (found.address, found.newsletter, found.purpose, found.legacy) == (
        "reader.one+news@example.org",
        "tech",
        "unsubscribe",
        False,
    )
    assert verify_token(KEY, token) == "reader.one+news@example.org"


def test_tokens_differ_by_newsletter_and_edition() -> None:
    tokens = Tokens(KEY)
    a = tokens.make(ADDRESS, "tech", issued=1_700_000_000)
    assert a == tokens.make(ADDRESS, "tech", issued=1_700_000_000)  # a resend writes the same bytes
    assert a != tokens.make(ADDRESS, "food", issued=1_700_000_000)
    assert a != tokens.make(ADDRESS, "tech", issued=1_700_086_400)  # editions are not linkable
    assert read_token(KEY, a).issued == 1_700_000_000  # type: ignore[union-attr]


def test_purposes_cannot_be_turned_into_one_another() -> None:
    for made in PURPOSES:
        token = make_token(KEY, ADDRESS, "tech", made)
        for asked in PURPOSES:
            found = read_token(KEY, token, asked)
            assert (found is not None) == (made == asked), (made, asked)
    legacy = make_legacy_token(KEY, ADDRESS)
    assert read_token(KEY, legacy, "unsubscribe") is not None
    assert read_token(KEY, legacy, "confirm") is None
    assert read_token(KEY, legacy, "preferences") is None


def test_forged_edited_and_malformed_tokens_are_refused() -> None:
    good = make_token(KEY, ADDRESS, "tech")
    assert read_token(b"another key", good) is None
    same_bytes = good[:-1] + ALPHABET[ALPHABET.index(good[-1]) ^ 1]  # unused low bits
    edits = [
        good[:i] + ALPHABET[(ALPHABET.index(c) + 1) % 64] + good[i + 1 :]
        for i, c in enumerate(good)
    ]
    bad = [
        same_bytes,
        good[:5] + "!" + good[5:],
        good[:-1],
        good[:-4],
        good + "A",
        good + "AAAA",
        "",
        "A" * 5000,
        "Ａ" + good[1:],
        good.replace(good[0], "=", 1),
    ]
    for token in [*edits, *bad]:
        if token != good:
            assert read_token(KEY, token) is None, token
    # a genuine token of the first format is read as one; its edits are not
    legacy = make_legacy_token(KEY, ADDRESS)
    assert read_token(KEY, legacy).legacy  # type: ignore[union-attr]
    assert read_token(KEY, legacy[:-1] + ALPHABET[ALPHABET.index(legacy[-1]) ^ 1]) is None


def test_the_message_carries_a_token_for_its_own_newsletter(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, email={"unsubscribe_url": "https://news.example/u?token={token}"}
    )
    edition = Edition(
        id=7,
        newsletter="tech",
        subject="Tech news",
        preheader="",
        html="<p>x</p>",
        text="x",
        created=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        post_keys=(),
    )
    prepared = prepare_message(settings, edition, key=KEY)
    url = prepared.unsubscribe_url(Recipient(ADDRESS))
    assert "reader" not in url.lower() and "example.org" not in url.lower()
    found = read_token(KEY, url.split("token=", 1)[1])
    assert found is not None and (found.address, found.newsletter) == (
        "reader.one+news@example.org",
        "tech",
    )
    assert found.issued == int(edition.created.timestamp())
    raw = prepared.for_recipient(Recipient(ADDRESS))
    assert url.encode() in raw  # the List-Unsubscribe header carries the same token


# --- the endpoint with two newsletters ---------------------------------------------------------


@pytest.fixture
def two_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from _endpoint(tmp_path, monkeypatch, newsletters=["tech", "food"], readers=3)


def _post(endpoint, token: str, data: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{endpoint.url}/letters/unsubscribe",
        params={"token": token},
        data=data or {"List-Unsubscribe": "One-Click"},
    )


def _recipients(endpoint, newsletter: str) -> set[str]:
    settings = make_settings(endpoint.ledger_path.parent)
    with open_ledger(endpoint.ledger_path) as led:
        return {r.email for r in subs.recipients(settings, led, newsletter)}


def test_a_token_leaves_its_own_newsletter_only(two_lists) -> None:
    ep = two_lists
    token = make_token(ep.key, "reader0@example.org", "tech")
    page = httpx.get(f"{ep.url}/letters/unsubscribe", params={"token": token})
    assert page.status_code == 200
    assert "<strong>tech</strong>" in page.text
    assert 'name="scope" value="all"' in page.text  # the separate, explicit choice
    assert (
        _recipients(ep, "tech")
        == _recipients(ep, "food")
        == {f"reader{i}@example.org" for i in range(3)}
    )

    r = _post(ep, token)  # what a mailbox provider's one-click POST sends
    assert r.status_code == 200 and "tech" in r.text
    assert "reader0@example.org" not in _recipients(ep, "tech")
    assert "reader0@example.org" in _recipients(ep, "food")
    with open_ledger(ep.ledger_path) as led:
        assert not led.is_suppressed("reader0@example.org")
    assert _post(ep, token).status_code == 200  # a retry is harmless


def test_unsubscribe_from_all_is_the_second_button(two_lists) -> None:
    ep = two_lists
    token = make_token(ep.key, "reader1@example.org", "food")
    r = _post(ep, token, {"List-Unsubscribe": "One-Click", "scope": "all"})
    assert r.status_code == 200
    with open_ledger(ep.ledger_path) as led:
        assert led.is_suppressed("reader1@example.org")
    assert "reader1@example.org" not in _recipients(ep, "tech") | _recipients(ep, "food")


def test_first_format_and_unknown_newsletter_tokens_leave_everything(two_lists) -> None:
    ep = two_lists
    assert _post(ep, make_legacy_token(ep.key, "reader0@example.org")).status_code == 200
    assert (
        _post(ep, make_token(ep.key, "reader1@example.org", "renamed-long-ago")).status_code == 200
    )
    with open_ledger(ep.ledger_path) as led:
        assert led.is_suppressed("reader0@example.org") and led.is_suppressed("reader1@example.org")
        assert not led.is_suppressed("reader2@example.org")


def test_a_token_of_another_purpose_is_refused(two_lists) -> None:
    ep = two_lists
    for purpose in ("confirm", "preferences"):
        token = make_token(ep.key, "reader0@example.org", "tech", purpose)
        assert (
            httpx.get(f"{ep.url}/letters/unsubscribe", params={"token": token}).status_code == 400
        )
        assert _post(ep, token).status_code == 400
    assert _recipients(ep, "tech") == {f"reader{i}@example.org" for i in range(3)}


def test_with_one_newsletter_a_token_unsubscribes_as_before(endpoint) -> None:
    token = make_token(endpoint.key, "reader0@example.org", "digest")
    page = httpx.get(f"{endpoint.url}/letters/unsubscribe", params={"token": token})
    assert 'name="scope"' not in page.text  # one list: one button
    assert _post(endpoint, token).status_code == 200
    with open_ledger(endpoint.ledger_path) as led:
        assert led.get_subscriber("reader0@example.org")["status"] == "unsubscribed"


def test_an_export_carries_the_newsletters_a_reader_left(tmp_path: Path) -> None:
    # Moving a ledger by export and import must not put a reader back on a list they left.
    with open_ledger(tmp_path / "old.sqlite") as led:
        subs.add(led, "ada@example.org", "Ada")
        subs.add(led, "bob@example.org")
        led.opt_out("ada@example.org", "tech", "one-click")
        led.opt_out("ada@example.org", "food", "one-click")
        subs.export_csv(led, tmp_path / "out.csv")
    text = (tmp_path / "out.csv").read_text(encoding="utf-8")
    assert "ada@example.org,Ada,active,," in text and text.splitlines()[1].endswith(",food|tech")
    with open_ledger(tmp_path / "new.sqlite") as led:
        report = subs.import_csv(led, tmp_path / "out.csv")
        assert report.added == 2
        assert led.is_opted_out("ada@example.org", "tech") and led.is_opted_out(
            "ada@example.org", "food"
        )
        assert not led.is_opted_out("bob@example.org", "tech") and not led.is_suppressed(
            "ada@example.org"
        )
