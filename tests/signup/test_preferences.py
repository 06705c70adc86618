"""The preferences page against a real `distrib serve` (waitress on 127.0.0.1), the real
ledger, and real sends (`distrib send` in a subprocess, to aiosmtpd): choosing
newsletters, pausing and resuming, unsubscribing from everything, and the link to it in
every edition's footer."""

from __future__ import annotations

import email
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from distrib import subscribers as subs
from distrib.config import load_config
from distrib.ledger import open_ledger
from distrib.serve import make_server
from distrib.unsubscribe import Tokens, make_legacy_token
from tests.conftest import SmtpServer, run_distrib
from tests.serve.conftest import free_port
from tests.signup.conftest import SECRET, Service, _config, _start
from tests.test_app import write_feed

LETTERS = '\n[[newsletters]]\nname = "weekly"\n\n[[newsletters]]\nname = "daily"\n'
LOCAL_FEED = '\n[[sources]]\nname = "blog"\ntype = "feed"\npath = "feed.xml"\n'


@pytest.fixture
def letters(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    """serve with two newsletters and a feed file of two posts from the last hours."""
    write_feed(tmp_path / "feed.xml", [(1, 5, "news"), (2, 3, "news")], now=datetime.now(UTC))
    gen = _start(tmp_path, smtp_server, monkeypatch, LETTERS, LOCAL_FEED)
    service = next(gen)
    with open_ledger(service.ledger_path) as led:
        for who in ("ana", "ben", "cy"):
            subs.add(led, f"{who}@example.org")
    yield service
    gen.close()


def prefs_token(service: Service, address: str, newsletter: str = "weekly") -> str:
    return Tokens(service.key).make(address, newsletter, "preferences")


def events(service: Service, address: str) -> list[tuple[str, str, str | None]]:
    with open_ledger(service.ledger_path) as led:
        return [(e["event"], e["how"], e["detail"]) for e in led.consent_record(address)]


def state(service: Service, address: str) -> tuple[str | None, bool, set[str]]:
    """(status, paused, newsletters left) as the ledger has them."""
    with open_ledger(service.ledger_path) as led:
        row = led.get_subscriber(address)
        return (
            row["status"] if row else None,
            bool(row and row["paused_at"]),
            led.newsletters_left(address),
        )


def checked(page: str) -> dict[str, bool]:
    """Each checkbox of the page (by value): checked or not."""
    return {
        m.group(2): "checked" in m.group(0)
        for m in re.finditer(
            r'<input type="checkbox" id="([^"]+)" name="\w+" value="([^"]+)"[^>]*>', page
        )
    }


def save(
    service: Service, token: str, newsletters: list[str], pause: bool = False
) -> httpx.Response:
    data: dict[str, str | list[str]] = {"token": token, "action": "save", "newsletter": newsletters}
    if pause:
        data["pause"] = "1"
    return service.http.post("/preferences", data=data)


def test_get_changes_nothing_and_post_applies_each_choice(letters: Service):
    token = prefs_token(letters, "ana@example.org")
    page = letters.http.get("/preferences", params={"token": token})
    assert page.status_code == 200
    assert "ana@example.org" in page.text
    # accessible: every box has its label, the groups their legend
    assert '<label for="nl-0">weekly</label>' in page.text
    assert '<label for="pause">' in page.text and "<legend>" in page.text
    assert checked(page.text) == {"weekly": True, "daily": True, "1": False}
    assert "Unsubscribe from everything" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert events(letters, "ana@example.org") == []  # a scanner's GET changed nothing

    r = save(letters, token, ["weekly"])
    assert r.status_code == 200 and "You will receive: weekly." in r.text
    assert state(letters, "ana@example.org") == ("active", False, {"daily"})
    again = letters.http.get("/preferences", params={"token": token})
    assert checked(again.text) == {"weekly": True, "daily": False, "1": False}

    r = save(letters, token, ["weekly", "daily"], pause=True)
    assert r.status_code == 200 and "paused" in r.text
    assert state(letters, "ana@example.org") == ("active", True, set())
    paused = letters.http.get("/preferences", params={"token": token})
    assert "Your emails are paused" in paused.text and checked(paused.text)["1"] is True
    with open_ledger(letters.ledger_path) as led:
        assert not led.is_suppressed("ana@example.org")  # paused is not suppressed

    assert save(letters, token, ["weekly", "daily"]).status_code == 200  # resume
    assert state(letters, "ana@example.org") == ("active", False, set())
    assert save(letters, token, ["weekly", "daily"]).status_code == 200  # no change: no event
    assert events(letters, "ana@example.org") == [
        ("opted_out", "preferences", "daily"),
        ("opted_in", "preferences", "daily"),
        ("paused", "preferences", None),
        ("resumed", "preferences", None),
    ]
    # a newsletter that does not exist is no choice at all
    save(letters, token, ["weekly", "daily", "nope"])
    assert state(letters, "ana@example.org") == ("active", False, set())

    gone = letters.http.post("/preferences", data={"token": token, "action": "unsubscribe"})
    assert gone.status_code == 200 and "no more emails" in gone.text
    assert state(letters, "ana@example.org")[0] == "unsubscribed"
    assert events(letters, "ana@example.org")[-1] == ("unsubscribed", "preferences", None)


def _sent(smtp: SmtpServer, start: int = 0) -> dict[str, list[str]]:
    """Per recipient, the newsletters (List-Id labels) received since message ``start``."""
    out: dict[str, list[str]] = {}
    for got in smtp.received[start:]:
        msg = email.message_from_bytes(got.data, policy=policy.default)
        label = re.search(r"<([\w-]+)\.", str(msg["List-Id"])).group(1)
        for rcpt in got.rcpt_tos:
            out.setdefault(rcpt, []).append(label)
    return {k: sorted(v) for k, v in out.items()}


def _send(service: Service) -> None:
    config = service.ledger_path.parent / "distrib.toml"
    proc = run_distrib(
        "send", "--config", str(config), env={"DISTRIB_SIGNUP_SECRET": SECRET}, timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _links(got: bytes) -> tuple[EmailMessage, str, str]:
    """The message, and the preferences link of its text part and of its HTML part."""
    msg = email.message_from_bytes(got, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    text = msg.get_body(("plain",)).get_content()
    markup = msg.get_body(("html",)).get_content()
    in_text = re.search(r"Preferences: (https://news\.example/preferences\?token=\S+)", text)
    in_html = re.search(
        r'href="(https://news\.example/preferences\?token=[^"]+)"[^>]*>Preferences<', markup
    )
    assert in_text and in_html, (text[-600:], markup[-1500:])
    return msg, in_text.group(1), in_html.group(1).replace("&amp;", "&")


def test_send_skips_the_paused_reader_honours_choices_and_resumes(letters: Service):
    smtp = letters.smtp
    ana = prefs_token(letters, "ana@example.org")
    assert save(letters, ana, ["weekly", "daily"], pause=True).status_code == 200
    assert save(letters, prefs_token(letters, "ben@example.org"), ["weekly"]).status_code == 200

    _send(letters)
    assert _sent(smtp) == {"ben@example.org": ["weekly"], "cy@example.org": ["daily", "weekly"]}

    # The footer of every edition links to the reader's own page, in both parts, beside
    # the unsubscribe link; the link opens the page for that reader only.
    cy = [g for g in smtp.received if g.rcpt_tos == ["cy@example.org"]][0]
    msg, text_link, html_link = _links(cy.data)
    assert text_link == html_link
    assert (
        "Unsubscribe: https://news.example/unsubscribe?token="
        in msg.get_body(("plain",)).get_content()
    )
    page = letters.http.get(urlsplit(text_link).path + "?" + urlsplit(text_link).query)
    assert page.status_code == 200 and "cy@example.org" in page.text
    token = unquote(urlsplit(text_link).query.removeprefix("token="))
    assert letters.http.post(f"/unsubscribe?token={token}").status_code == 400  # not that door
    ben = [g for g in smtp.received if g.rcpt_tos == ["ben@example.org"]][0]
    assert _links(ben.data)[1] != text_link

    # ana resumes; a new post goes to her again
    assert save(letters, ana, ["weekly", "daily"]).status_code == 200
    write_feed(
        letters.ledger_path.parent / "feed.xml",
        [(1, 5, "news"), (2, 3, "news"), (3, 0.5, "news")],
        now=datetime.now(UTC),
    )
    before = len(smtp.received)
    _send(letters)
    assert _sent(smtp, before) == {
        "ana@example.org": ["daily", "weekly"],
        "ben@example.org": ["weekly"],
        "cy@example.org": ["daily", "weekly"],
    }


def test_tokens_of_another_purpose_or_forged_are_refused_both_ways(letters: Service):
    tokens = Tokens(letters.key)
    address = "ana@example.org"
    others = {
        "confirm": tokens.make(address, "weekly", "confirm"),
        "unsubscribe": tokens.make(address, "weekly", "unsubscribe"),
        "first-format unsubscribe": make_legacy_token(letters.key, address),
        "garbage": "garbage",
        "empty": "",
        "other key": Tokens(b"another key").make(address, "weekly", "preferences"),
    }
    good = prefs_token(letters, address)
    others["one character changed"] = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
    for what, token in others.items():
        page = letters.http.get("/preferences", params={"token": token})
        assert page.status_code == 400 and "not valid" in page.text, what
        for action in ("save", "unsubscribe"):
            r = letters.http.post(
                "/preferences", data={"token": token, "action": action, "pause": "1"}
            )
            assert r.status_code == 400, (what, action)
    # and a preferences token opens neither the confirmation nor the unsubscribe door
    assert letters.http.get("/confirm", params={"token": good}).status_code == 400
    assert letters.http.post("/confirm", data={"token": good}).status_code == 400
    assert letters.http.get(f"/unsubscribe?token={good}").status_code == 400
    assert letters.http.post(f"/unsubscribe?token={good}").status_code == 400
    assert state(letters, address) == ("active", False, set())
    assert events(letters, address) == []


def test_a_suppressed_forgotten_or_unknown_address_changes_nothing(letters: Service):
    with open_ledger(letters.ledger_path) as led:
        led.suppress("ben@example.org", "complained", "manual")
        led.forget("cy@example.org")
    for address, status in (
        ("ben@example.org", "complained"),
        ("cy@example.org", None),
        ("nobody@example.org", None),
    ):
        token = prefs_token(letters, address)
        before = events(letters, address)
        page = letters.http.get("/preferences", params={"token": token})
        assert page.status_code == 200 and "is not subscribed" in page.text, address
        assert "<form" not in page.text
        for action in ("save", "unsubscribe"):
            r = letters.http.post(
                "/preferences",
                data={"token": token, "action": action, "newsletter": "weekly", "pause": "1"},
            )
            assert r.status_code == 200 and "is not subscribed" in r.text, (address, action)
        assert state(letters, address) == (status, False, set())
        assert events(letters, address) == before
    with open_ledger(letters.ledger_path) as led:
        assert led.is_forgotten("cy@example.org")


def test_bad_input_gets_a_clear_answer(letters: Service):
    token = prefs_token(letters, "ana@example.org")
    big = letters.http.post(
        "/preferences",
        content=b"token=" + token.encode() + b"&action=save&x=" + b"a" * (10 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413
    odd = letters.http.post("/preferences", data={"token": token, "action": "delete-me"})
    assert odd.status_code == 400 and "Save my choices" in odd.text
    assert state(letters, "ana@example.org") == ("active", False, set())
    assert events(letters, "ana@example.org") == []


def test_a_kill_right_after_the_200_keeps_the_change(tmp_path: Path, smtp_server: SmtpServer):
    config = _config(tmp_path, smtp_server, LETTERS)
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        subs.add(led, "ana@example.org")
    env = {k: v for k, v in os.environ.items() if k != "DISTRIB_CONFIG"}
    env |= {"DISTRIB_SIGNUP_SECRET": SECRET, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "distrib", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    token = Tokens(SECRET.encode()).make("ana@example.org", "weekly", "preferences")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
                time.sleep(0.1)
        r = httpx.post(
            f"{url}/preferences",
            data={"token": token, "action": "save", "newsletter": "weekly", "pause": "1"},
            timeout=10,
        )
        proc.send_signal(signal.SIGKILL)
        assert r.status_code == 200, r.text
    finally:
        proc.kill()
        proc.wait(10)
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        row = led.get_subscriber("ana@example.org")
        assert row["status"] == "active" and row["paused_at"]
        assert led.newsletters_left("ana@example.org") == {"daily"}
        assert [e["event"] for e in led.consent_record("ana@example.org")] == [
            "opted_out",
            "paused",
        ]


def test_the_ledger_side_on_both_backends(open_any_ledger):
    every = ["weekly", "daily"]
    with open_any_ledger() as led:
        led.add_subscriber("ana@example.org")
        led.add_subscriber("ben@example.org")
        assert led.update_preferences("ana@example.org", every, ["weekly"], True) == [
            "opted_out:daily",
            "paused",
        ]
        assert led.paused() == {"ana@example.org"}
        assert led.update_preferences("ana@example.org", every, ["weekly"], True) == []
        assert led.update_preferences("ana@example.org", every, every, False) == [
            "opted_in:daily",
            "resumed",
        ]
        assert led.paused() == set() and led.newsletters_left("ana@example.org") == set()
        assert led.unsubscribe_everything("ana@example.org", "preferences")
        assert not led.unsubscribe_everything("ana@example.org", "preferences")
        assert led.update_preferences("ana@example.org", every, [], True) is None
        assert led.update_preferences("nobody@example.org", every, [], True) is None
        # a confirmation brings ana back unpaused, welcomed once
        assert led.confirm_subscriber("ana@example.org", "", [], every, welcome=True)
        assert not led.confirm_subscriber("ana@example.org", "", [], every, welcome=True)
        assert [r["kind"] for r in led.claim_outbox()] == ["welcome"]
        assert [e["event"] for e in led.consent_record("ana@example.org")] == [
            "opted_out",
            "paused",
            "opted_in",
            "resumed",
            "unsubscribed",
            "confirmed",
        ]
        # the webhooks' and the erasure's transactions too
        assert (
            led.provider_event("ben@example.org", "complained", "postmark", "abuse") == "complained"
        )
        assert led.forget("ben@example.org") and led.is_forgotten("ben@example.org")


def test_with_one_newsletter_the_page_names_the_site(service: Service):
    with open_ledger(service.ledger_path) as led:
        subs.add(led, "dee@example.org")
    token = prefs_token(service, "dee@example.org", "digest")
    page = service.http.get("/preferences", params={"token": token})
    assert '<label for="nl-0">Harbour Notes</label>' in page.text
    assert checked(page.text) == {"digest": True, "1": False}
    r = save(service, token, [])
    assert r.status_code == 200 and "You chose no newsletter" in r.text
    settings = load_config(service.ledger_path.parent / "distrib.toml")
    with open_ledger(service.ledger_path) as led:
        assert list(subs.recipients(settings, led, "digest")) == []
        assert [r.email for r in subs.recipients(settings, led)] == ["dee@example.org"]


def test_an_unsubscribe_url_with_its_token_at_the_root_hides_no_page(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
):
    # unsubscribe_url = "https://news.example/{token}" matches every one-segment path;
    # the fixed pages (/preferences, /confirm, /subscribe) are routed before it.
    path = _config(tmp_path, smtp_server)
    path.write_text(
        path.read_text().replace("/unsubscribe?token={token}", "/{token}"), encoding="utf-8"
    )
    monkeypatch.setenv("DISTRIB_SIGNUP_SECRET", SECRET)
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        subs.add(led, "ana@example.org")
    server = make_server(load_config(path), tmp_path / "distrib.sqlite", "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        token = Tokens(SECRET.encode()).make("ana@example.org", "digest", "preferences")
        page = httpx.get(f"{server.url}/preferences", params={"token": token}, timeout=10)
        assert page.status_code == 200 and "ana@example.org" in page.text
        unsub = Tokens(SECRET.encode()).make("ana@example.org", "digest")
        assert httpx.get(f"{server.url}/{unsub}", timeout=10).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_paused_reader_who_signs_up_and_confirms_again_is_resumed(letters: Service):
    """Pausing, then signing up again through the form and confirming: the confirmation
    is the reader's new consent, and its page says "subscribed", so the pause ends (it
    stayed on: the page said subscribed and nothing came).  The signup's answer is the
    same as for anyone (no enumeration)."""
    token = prefs_token(letters, "ana@example.org")
    assert save(letters, token, ["weekly", "daily"], pause=True).status_code == 200
    assert state(letters, "ana@example.org") == ("active", True, set())
    paused = letters.subscribe(email="ana@example.org")
    fresh = letters.subscribe(email="zed@example.org")
    assert (paused.status_code, paused.text) == (fresh.status_code, fresh.text)
    letters.wait_for_mail(2)
    for m in letters.smtp.received:
        msg = email.message_from_bytes(m.data, policy=policy.default)
        if msg["To"] == "ana@example.org":
            text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            link = re.search(r"/confirm\?token=(\S+)", text)
            assert link
            confirm = unquote(link.group(1))
    r = letters.http.post("/confirm", data={"token": confirm})
    assert r.status_code == 200 and "is subscribed" in r.text
    assert state(letters, "ana@example.org") == ("active", False, set())
    assert [e[0] for e in events(letters, "ana@example.org")][-2:] == ["confirmed", "resumed"]


def test_a_post_without_the_form_changes_nothing(letters: Service):
    """The page's forms carry the token in their body; a POST with the token only in
    the query (an empty body, a JSON or multipart one: a scanner, a script) applied an
    empty choice before, opting the reader out of every newsletter."""
    token = prefs_token(letters, "ana@example.org")
    empty = letters.http.post(f"/preferences?token={token}")
    assert empty.status_code == 400
    as_json = letters.http.post(f"/preferences?token={token}", json={"action": "save"})
    assert as_json.status_code == 400
    multipart = letters.http.post(
        f"/preferences?token={token}", files={"action": (None, "unsubscribe")}
    )
    assert multipart.status_code == 400
    assert state(letters, "ana@example.org") == ("active", False, set())
    assert events(letters, "ana@example.org") == []
    # the page's own form posts to its own URL, the token in both: that works
    r = letters.http.post(
        f"/preferences?token={token}",
        data={"token": token, "action": "save", "newsletter": "weekly"},
    )
    assert r.status_code == 200 and state(letters, "ana@example.org") == (
        "active",
        False,
        {"daily"},
    )
