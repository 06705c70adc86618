"""A reader signs up in headless Chromium: the form `distrib form` prints, pasted into a
page of the site, posts to a real `distrib serve` process on 127.0.0.1, whose
confirmation email reaches aiosmtpd; Chromium follows the email's link and clicks the
button; the ledger then has the address subscribed with its consent record.

Chromium is driven through the DevTools protocol over a pipe (tests/signup/cdp.py): it
types into the field and clicks with the mouse, so the browser itself encodes and
submits the forms.  Needs /usr/bin/chromium (apt-get install chromium); skipped without.
"""

from __future__ import annotations

import email
import http.server
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path

import httpx
import pytest

from distrib.ledger import open_ledger
from tests.conftest import SmtpServer, free_port, run_distrib
from tests.render.browser import SKIP_REASON

from . import cdp

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not cdp.available(), reason=SKIP_REASON),
]

ADDRESS = "reader.one@example.org"


def _config(folder: Path, serve_port: int, smtp: SmtpServer) -> Path:
    path = folder / "distrib.toml"
    path.write_text(
        f"""
[site]
name = "Harbour Notes"
url = "https://news.example/"

[[sources]]
name = "blog"
type = "feed"
url = "https://news.example/feed.xml"

[email]
mailer = "smtp"
from = "Harbour Notes <news@news.example>"
unsubscribe_url = "https://news.example/unsubscribe?token={{token}}"
[email.smtp]
host = "{smtp.host}"
port = {smtp.port}
security = "none"

[signup]
base_url = "http://127.0.0.1:{serve_port}"
""",
        encoding="utf-8",
    )
    return path


class _Site(http.server.ThreadingHTTPServer):
    """The publisher's site: one page with the pasted form."""

    page = b""


class _SitePage(http.server.BaseHTTPRequestHandler):
    server: _Site

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.server.page)))
        self.end_headers()
        self.wfile.write(self.server.page)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[tuple[str, str, Path]]:
    """(site page URL, serve URL, ledger path): `distrib serve` running as a process, and
    the site's page holding what `distrib form` printed."""
    serve_port = free_port()
    config = _config(tmp_path, serve_port, smtp_server)
    printed = run_distrib("form", "--config", str(config), cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Harbour Notes</title>'
        "</head><body><main><h1>Harbour Notes</h1><p>Get the weekly digest.</p>"
        f"{printed.stdout}</main></body></html>"
    )
    web = _Site(("127.0.0.1", 0), _SitePage)
    web.page = page.encode()
    web_thread = threading.Thread(target=web.serve_forever, args=(0.05,), daemon=True)
    web_thread.start()
    serve_url = f"http://127.0.0.1:{serve_port}"
    env = {k: v for k, v in os.environ.items() if k != "DISTRIB_CONFIG"}
    serve = subprocess.Popen(
        [sys.executable, "-m", "distrib", "serve", "--config", str(config)]
        + ["--host", "127.0.0.1", "--port", str(serve_port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until_serving(serve, serve_url)
        yield f"http://127.0.0.1:{web.server_address[1]}/", serve_url, tmp_path / "distrib.sqlite"
    finally:
        serve.terminate()
        try:
            serve.wait(20)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(10)
        if serve.stderr is not None:
            serve.stderr.close()
        web.shutdown()
        web.server_close()
        web_thread.join(5)


def _wait_until_serving(serve: subprocess.Popen[bytes], url: str) -> None:
    for _ in range(600):
        if serve.poll() is not None:
            err = serve.stderr.read().decode() if serve.stderr else ""
            raise AssertionError(f"distrib serve exited with {serve.returncode}: {err}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("distrib serve did not answer /healthz")


def _confirmation_link(smtp: SmtpServer, serve_url: str) -> str:
    for _ in range(600):  # serve's sender thread sends within seconds
        if smtp.received:
            break
        time.sleep(0.05)
    assert len(smtp.received) == 1, f"{len(smtp.received)} confirmation emails"
    got = smtp.received[0]
    assert got.rcpt_tos == [ADDRESS]
    msg = email.message_from_bytes(got.data, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    m = re.search(re.escape(serve_url) + r"/confirm\?token=\S+", text)
    assert m, text
    return m.group(0)


def _subscriber(ledger: Path) -> tuple[str | None, str | None, list[tuple[str, str, str]]]:
    with open_ledger(ledger) as led:
        row = led.get_subscriber(ADDRESS)
        events = [(e["event"], e["how"], e["at"]) for e in led.consent_record(ADDRESS)]
    return (row["status"] if row else None), (row["name"] if row else None), events


def _check_form_is_accessible(page: cdp.Page) -> None:
    """Each field has its label tied to it; the honeypot is neither seen, reached with the
    keyboard nor announced by a screen reader."""
    labels = page.eval(
        "[...document.querySelectorAll('form.distrib-signup input')].map(e => "
        "[e.name, [...e.labels].map(l => l.textContent.trim())])"
    )
    assert dict((n, ls) for n, ls in labels) == {
        "email": ["Email address"],
        "name": ["Name (optional)"],
        "website": ["Leave this empty"],
    }
    assert page.eval("document.getElementById('distrib-email').type") == "email"
    assert page.eval("document.getElementById('distrib-email').required") is True
    trap = page.eval(
        "(() => { const e = document.getElementById('distrib-website');"
        " const r = e.getBoundingClientRect();"
        " return {right: r.right, bottom: r.bottom, tab: e.tabIndex,"
        " hidden: e.closest('[aria-hidden=true]') !== null}; })()"
    )
    assert trap["right"] <= 0 or trap["bottom"] <= 0, f"the honeypot is on screen: {trap}"
    assert trap["tab"] == -1 and trap["hidden"] is True
    # What a screen reader gets: Chromium's own accessibility tree.
    announced = [
        (n.get("role", {}).get("value"), n.get("name", {}).get("value"))
        for n in page.accessibility_tree()
        if not n.get("ignored")
    ]
    assert ("textbox", "Email address") in announced
    assert ("textbox", "Name (optional)") in announced
    assert ("button", "Subscribe") in announced
    assert not [a for a in announced if a[1] and "empty" in str(a[1]).lower()], announced


def test_chromium_signs_up_through_the_form_and_confirms_from_the_email(
    site: tuple[str, str, Path], smtp_server: SmtpServer
):
    site_url, serve_url, ledger = site
    with cdp.Browser() as browser:
        page = browser.new_page()
        page.goto(site_url)
        _check_form_is_accessible(page)

        page.type_into("#distrib-email", "Reader.One@Example.org")
        page.type_into("#distrib-name", "Reader One")
        page.click("form.distrib-signup button[type=submit]")
        assert page.eval("location.href") == serve_url + "/subscribe"
        assert "check your inbox" in page.text()
        assert _subscriber(ledger)[0] is None  # nothing is sent before the confirmation

        link = _confirmation_link(smtp_server, serve_url)
        page.goto(link)  # what a mail scanner also fetches: it changes nothing
        assert ADDRESS in page.text()
        assert _subscriber(ledger)[0] is None

        page.click("form button[type=submit]")
        assert page.eval("location.href").startswith(serve_url + "/confirm?token=")
        assert f"{ADDRESS} is subscribed" in page.text()

    status, name, events = _subscriber(ledger)
    assert status == "active"
    assert name == "Reader One"
    assert [(event, how) for event, how, _ in events] == [("signup", "form"), ("confirmed", "form")]
    signed_up, confirmed = events[0][2], events[1][2]
    assert signed_up and confirmed and signed_up <= confirmed
