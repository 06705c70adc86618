"""distrib preview: the files it writes and the live-reloading server."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest

from distrib.errors import TemplateError
from distrib.preview import PREVIEW_EMAIL, make_server, write_preview
from distrib.render.email import render_edition

from .cases import FIXED_NOW, make_posts

EML = b"From: news@harbour.example\r\nSubject: test\r\n\r\nbody\r\n"


def test_write_preview_files_and_summary(make_settings, tmp_path):
    settings = make_settings()
    r = render_edition(
        settings, make_posts(60), newsletter=settings.data["digest"], name="digest", now=FIXED_NOW
    )
    out = tmp_path / "preview"
    s = write_preview(out, r, EML, budget_kb=90)
    assert (out / "digest.eml").read_bytes() == EML
    html = (out / "digest.html").read_text(encoding="utf-8")
    assert PREVIEW_EMAIL in html and "XDISTRIB" not in html
    assert "XDISTRIB" not in (out / "digest.txt").read_text(encoding="utf-8")
    assert s["budget_kb"] == 90 and 50 < s["size_kb"] <= 90 and not s["over_budget"]
    assert s["overflow"] == len(r.overflow_keys) > 0 and s["full"] + s["overflow"] == 60
    assert s["subject"] == r.subject


def get(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode("utf-8")


@pytest.fixture
def served(make_settings, tmp_path):
    """A preview server over a user template folder the test can edit."""
    tdir = tmp_path / "my-templates" / "email"
    tdir.mkdir(parents=True)
    template = tdir / "digest.mjml.j2"
    template.write_text('{% extends "!default/email/digest.mjml.j2" %}\n', encoding="utf-8")
    settings = make_settings('[templates]\ndir = "my-templates"\n')

    def build():
        r = render_edition(
            settings,
            make_posts(4),
            newsletter=settings.data["digest"],
            name="digest",
            now=FIXED_NOW,
        )
        return r, EML

    server = make_server(
        build, [tmp_path / "my-templates", settings.path], "127.0.0.1", 0, budget_kb=90
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server, template
    finally:
        server.shutdown()
        server.server_close()


def _touch_later(path, text):
    # mtime granularity: make sure the new mtime differs from the old one.
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    while path.stat().st_mtime_ns == before:
        time.sleep(0.01)
        path.write_text(text, encoding="utf-8")


def test_server_shows_the_edition_and_reloads_on_change(served):
    server, template = served
    page = get(server.url)
    assert "Subject" in page and "Harbour wall extension" in page
    assert 'src="/email.html"' in page and "375 px" in page and "KB of 90 KB" in page
    assert "Harbour wall extension" in get(server.url + "email.html")
    assert "Unsubscribe: https://example.com/unsubscribe?token=preview" in get(
        server.url + "email.txt"
    )
    v = int(get(server.url + "version?since=-1&wait=0"))
    # Nothing changed: a short long-poll answers the same version.
    assert int(get(server.url + f"version?since={v}&wait=0.3")) == v

    # A broken template: the next poll sees the change; the page shows the error.
    _touch_later(
        template,
        '{% extends "!default/email/digest.mjml.j2" %}\n{% block lead %}{{ nope( }}{% endblock %}\n',
    )
    v2 = int(get(server.url + f"version?since={v}&wait=5"))
    assert v2 > v
    page = get(server.url)
    assert "does not build" in page and "digest.mjml.j2:2" in page

    # Fixed: the email is back, with the change.
    _touch_later(
        template,
        '{% extends "!default/email/digest.mjml.j2" %}\n{% block lead %}<mj-section><mj-column><mj-text>Pick of the week</mj-text></mj-column></mj-section>{% endblock %}\n',
    )
    v3 = int(get(server.url + f"version?since={v2}&wait=5"))
    assert v3 > v2
    assert "Pick of the week" in get(server.url + "email.html")
    assert "does not build" not in get(server.url)


def test_a_malformed_or_huge_long_poll_wait_and_head_requests(served):
    server, _ = served
    v = int(get(server.url + "version?since=-1&wait=0"))
    for wait in ("abc", "nan", "-1", "1e9"):
        # the version has not changed, so a valid wait would hold; these must answer, not crash
        assert int(get(server.url + f"version?since=-1&wait={wait}")) == v
    for path in ("", "email.html", "version?since=-1"):
        req = urllib.request.Request(server.url + path, method="HEAD")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200 and r.read() == b""
            assert int(r.headers["Content-Length"]) > 0


def test_build_error_at_start_is_shown_not_raised(make_settings, tmp_path):
    def build():
        raise TemplateError("email/digest.mjml.j2:3: unexpected '}'")

    server = make_server(build, [], "127.0.0.1", 0)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        page = get(server.url)
        assert "email/digest.mjml.j2:3: unexpected &#x27;}&#x27;" in page
        with pytest.raises(urllib.error.HTTPError):
            get(server.url + "email.html")
    finally:
        server.shutdown()
        server.server_close()
