"""The welcome email: queued in the ledger by the first confirmation (not a repeat), sent
by serve's sender thread to aiosmtpd, with links to the preferences page and to
unsubscribe; ``[signup] welcome = false`` turns it off; its templates are overridable."""

from __future__ import annotations

import email
import re
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from distrib.config import load_config
from distrib.ledger import open_ledger
from distrib.signup import drain_outbox
from tests.conftest import SmtpServer
from tests.signup.conftest import SECRET, Service, _config, _start
from tests.signup.test_signup import _confirm_link


def _message(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _welcomes(service: Service) -> list[EmailMessage]:
    return [
        m
        for m in (_message(r.data) for r in service.smtp.received)
        if str(m["Subject"]).startswith("Welcome")
    ]


def _welcome_rows(service: Service) -> int:
    with open_ledger(service.ledger_path) as led:
        return int(
            led.db.execute("SELECT count(*) FROM mail_outbox WHERE kind = 'welcome'").fetchone()[0]
        )


def _sign_up_and_confirm(service: Service, address: str, times: int) -> None:
    assert service.subscribe(email=address, name="Ana Lima").status_code == 200
    service.wait_for_mail(1)
    link = _confirm_link(service.smtp.received[0].data)
    token = unquote(urlsplit(link).query.removeprefix("token="))
    for _ in range(times):
        assert service.http.post("/confirm", data={"token": token}).status_code == 200


def test_first_confirmation_sends_one_welcome_with_working_links(service: Service):
    _sign_up_and_confirm(service, "ana@example.org", times=2)  # twice: harmless, one welcome
    service.wait_for_mail(2)
    time.sleep(0.5)
    assert len(service.smtp.received) == 2
    assert _welcome_rows(service) == 1
    (welcome,) = _welcomes(service)
    assert welcome["To"] == "Ana Lima <ana@example.org>"  # the name given at signup
    text = welcome.get_body(("plain",)).get_content()
    markup = welcome.get_body(("html",)).get_content()
    assert "Welcome, Ana Lima: ana@example.org is subscribed" in text
    prefs = re.search(r"https://news\.example/preferences\?token=\S+", text).group(0)
    unsub = re.search(r"https://news\.example/unsubscribe\?token=\S+", text).group(0)
    assert f'href="{prefs}"' in markup and f'href="{unsub}"' in markup
    assert welcome["List-Unsubscribe"] == f"<{unsub}>"
    page = service.http.get(prefs.removeprefix("https://news.example"))
    assert page.status_code == 200 and "ana@example.org" in page.text
    # a third confirmation later is still no new welcome
    link = _confirm_link(service.smtp.received[0].data)
    service.http.post(link.removeprefix("https://news.example"))
    time.sleep(0.5)
    assert len(_welcomes(service)) == 1 and _welcome_rows(service) == 1


@pytest.fixture
def no_welcome(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    yield from _start(tmp_path, smtp_server, monkeypatch, "\n[signup]\nwelcome = false\n")


def test_welcome_false_sends_none(no_welcome: Service):
    _sign_up_and_confirm(no_welcome, "ben@example.org", times=1)
    assert no_welcome.status("ben@example.org") == "active"
    time.sleep(1.0)
    assert len(no_welcome.smtp.received) == 1  # the confirmation only
    assert _welcomes(no_welcome) == [] and _welcome_rows(no_welcome) == 0


def test_run_sends_a_queued_welcome_and_the_templates_are_overridable(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
):
    # serve down: the next run's drain sends it, through the publisher's own templates
    folder = tmp_path / "templates" / "email"
    folder.mkdir(parents=True)
    (folder / "welcome.txt.j2").write_text(
        "Ahoy {{ address }}! Prefs: {{ preferences_url }} Leave: {{ unsubscribe_url }}\n"
    )
    (folder / "welcome.html.j2").write_text(
        '<p>Ahoy <a href="{{ preferences_url }}">prefs</a> <a href="{{ unsubscribe_url }}">leave</a></p>'
    )
    monkeypatch.setenv("DISTRIB_SIGNUP_SECRET", SECRET)
    extra = f'\n[templates]\ndir = "{tmp_path / "templates"}"\n'
    settings = load_config(_config(tmp_path, smtp_server, extra))
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        assert led.confirm_subscriber("cy@example.org", "", [], ["digest"], welcome=True)
        assert not led.confirm_subscriber("cy@example.org", "", [], ["digest"], welcome=True)
        # a subscriber confirming another newsletter later is welcomed once, not again
        every = ["digest", "extra"]
        assert led.confirm_subscriber("dee@example.org", "", ["digest"], every, welcome=True)
        assert led.confirm_subscriber("dee@example.org", "", ["extra"], every, welcome=True)
        assert drain_outbox(settings, led) == 2
        assert drain_outbox(settings, led) == 0
    got, dee = smtp_server.received
    assert dee.rcpt_tos == ["dee@example.org"]
    text = _message(got.data).get_body(("plain",)).get_content()
    assert re.fullmatch(
        r"Ahoy cy@example\.org! Prefs: https://news\.example/preferences\?token=\S+ "
        r"Leave: https://news\.example/unsubscribe\?token=\S+\s*",
        text,
    ), text


def test_a_queued_welcome_is_not_sent_once_the_reader_left_or_paused(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
):
    """serve was down (or the mail server deferred it) while the reader unsubscribed from
    the preferences page, complained, or paused: the welcome waiting in the queue went out
    anyway, to an address that asked for nothing more."""
    monkeypatch.setenv("DISTRIB_SIGNUP_SECRET", SECRET)
    settings = load_config(_config(tmp_path, smtp_server))
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        for who in ("ana", "ben", "cy", "dee"):
            assert led.confirm_subscriber(f"{who}@example.org", "", [], ["digest"], welcome=True)
        assert led.unsubscribe_everything("ana@example.org", "preferences")
        assert led.provider_event("ben@example.org", "complained", "postmark") is not None
        assert led.update_preferences("cy@example.org", ["digest"], ["digest"], True) == ["paused"]
        assert drain_outbox(settings, led) == 1
        assert drain_outbox(settings, led) == 0
        left = {
            r[0]: (r[1], r[2])
            for r in led.db.execute("SELECT address, status, error FROM mail_outbox")
        }
    assert [r.rcpt_tos for r in smtp_server.received] == [["dee@example.org"]]
    for who in ("ana", "ben", "cy"):
        status, error = left[f"{who}@example.org"]
        assert status == "failed" and "not sent" in error
