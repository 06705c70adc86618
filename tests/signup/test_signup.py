"""Signup with double opt-in against a real `distrib serve` (waitress on 127.0.0.1), a
real SMTP server (aiosmtpd) receiving the confirmation, and the real ledger."""

from __future__ import annotations

import email
import re
import time
from datetime import timedelta
from email import policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from distrib import subscribers as subs
from distrib.config import load_config
from distrib.ledger import open_ledger
from distrib.unsubscribe import Tokens
from tests.conftest import SmtpServer
from tests.signup.conftest import SECRET, Service, _config


def _confirm_link(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    m = re.search(r"https://news\.example/confirm\?token=\S+", text)
    assert m, text
    return m.group(0)


def test_signup_mails_a_link_that_confirms_only_on_post(service: Service):
    r = service.subscribe(email="Ana@Example.org", name="Ana")
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert service.status("ana@example.org") is None  # nothing to send to before confirming
    service.wait_for_mail(1)
    got = service.smtp.received[0]
    assert got.rcpt_tos == ["ana@example.org"]
    link = _confirm_link(got.data)
    path = link.removeprefix("https://news.example")
    page = service.http.get(path)  # a mail scanner's prefetch
    assert page.status_code == 200 and "<button" in page.text and "ana@example.org" in page.text
    assert service.status("ana@example.org") is None
    token = urlsplit(link).query.removeprefix("token=")
    done = service.http.post("/confirm", data={"token": token.replace("%3D", "=")})
    assert done.status_code == 200, done.text
    assert service.status("ana@example.org") == "active"
    again = service.http.post(path)  # twice is harmless
    assert again.status_code == 200 and service.status("ana@example.org") == "active"
    with open_ledger(service.ledger_path) as led:
        events = [(e["event"], e["how"]) for e in led.consent_record("ana@example.org")]
        assert events == [("signup", "form"), ("confirmed", "form")]
        assert [r.email for r in subs.recipients(load_config(service_config(service)), led)] == [
            "ana@example.org"
        ]


def service_config(service: Service) -> Path:
    return service.ledger_path.parent / "distrib.toml"


def test_the_answer_is_the_same_whatever_the_state(service: Service):
    with open_ledger(service.ledger_path) as led:
        subs.add(led, "old@example.org")
        led.suppress("gone@example.org", "complained", "manual")
    answers = {
        a: service.http.post("/subscribe", data={"email": a}).text
        for a in ("new@example.org", "old@example.org", "gone@example.org")
    }
    assert len(set(answers.values())) == 1
    service.wait_for_mail(2)
    time.sleep(0.5)
    # the active one gets nothing; the suppressed one stays suppressed until it confirms
    assert sorted(r.rcpt_tos[0] for r in service.smtp.received) == [
        "gone@example.org",
        "new@example.org",
    ]
    assert service.status("gone@example.org") == "complained"
    gone = [r for r in service.smtp.received if r.rcpt_tos == ["gone@example.org"]][0]
    service.http.post(_confirm_link(gone.data).removeprefix("https://news.example"))
    assert service.status("gone@example.org") == "active"


def test_honeypot_and_bad_input_change_nothing(service: Service):
    assert (
        service.subscribe(email="bot@example.org", website="http://spam").json()["status"]
        == "pending"
    )
    bad = service.subscribe(email="not an address")
    assert bad.status_code == 400 and "not an email address" in bad.json()["message"]
    assert service.subscribe(email="x@example.org", newsletter="nope").status_code == 400
    big = service.http.post(
        "/subscribe",
        content=b"email=" + b"a" * (10 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413
    time.sleep(0.5)
    assert service.smtp.received == []
    with open_ledger(service.ledger_path) as led:
        assert led.outbox_pending() == 0
        assert led.consent_record("bot@example.org") == []


def test_tokens_of_another_purpose_forged_or_expired_are_refused(service: Service):
    tokens = Tokens(service.key)
    unsub = tokens.make("eve@example.org", "digest", "unsubscribe")
    assert service.http.post("/confirm", data={"token": unsub}).status_code == 400
    assert service.http.post("/confirm", data={"token": "garbage"}).status_code == 400
    old = tokens.make(
        "eve@example.org",
        "digest",
        "confirm",
        issued=int(time.time() - timedelta(days=8).total_seconds()),
    )
    assert service.http.post("/confirm", data={"token": old}).status_code == 410
    assert service.http.get("/confirm", params={"token": old}).status_code == 410
    # and a confirm token does not unsubscribe anyone
    with open_ledger(service.ledger_path) as led:
        subs.add(led, "ann@example.org")
    conf = tokens.make("ann@example.org", "digest", "confirm")
    assert service.http.post(f"/unsubscribe?token={conf}").status_code == 400
    assert service.status("ann@example.org") == "active"
    assert service.status("eve@example.org") is None


def test_per_address_and_per_ip_limits(service: Service):
    for _ in range(5):
        assert service.subscribe(email="victim@example.org").json()["status"] == "pending"
    service.wait_for_mail(3)
    time.sleep(0.5)
    assert len(service.smtp.received) == 3  # [signup] per_address
    for i in range(5):
        service.subscribe(email=f"p{i}@example.org")
    r = service.subscribe(email="p9@example.org")
    assert r.status_code == 429  # [signup] per_ip = 10 an hour


def test_distrib_form_prints_an_accessible_form(tmp_path: Path, smtp_server: SmtpServer):
    from click.testing import CliRunner

    from distrib.cli import cli

    path = _config(tmp_path, smtp_server)
    out = CliRunner().invoke(cli, ["form", "--config", str(path)])
    assert out.exit_code == 0, out.output
    assert 'action="https://news.example/subscribe"' in out.output
    assert '<label for="distrib-email">' in out.output and 'id="distrib-email"' in out.output
    assert 'name="website"' in out.output and 'tabindex="-1"' in out.output


def test_run_sends_what_serve_left_queued(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
):
    from distrib.signup import drain_outbox

    monkeypatch.setenv("DISTRIB_SIGNUP_SECRET", SECRET)
    settings = load_config(_config(tmp_path, smtp_server))
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        led.queue_signup("late@example.org", "", [])
        assert drain_outbox(settings, led) == 1
        assert drain_outbox(settings, led) == 0  # sent once
        assert led.outbox_pending() == 0
    assert [r.rcpt_tos for r in smtp_server.received] == [["late@example.org"]]


def test_no_page_of_serve_may_be_framed(service: Service) -> None:
    """A page with a button that changes a subscription (confirm, preferences, unsubscribe)
    framed by another site invites clickjacking: every answer forbids framing."""
    for r in (service.http.get("/confirm?token=x"), service.http.get("/healthz")):
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
