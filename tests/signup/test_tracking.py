"""Click tracking ([tracking] clicks = true): links rewritten once per edition, redirects
and counts from a real `distrib serve` on 127.0.0.1, and what no one can make it do
(redirect elsewhere, count a prefetch)."""

from __future__ import annotations

import html
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest

from distrib.app import make_app
from distrib.config import load_config
from distrib.ledger import open_ledger
from distrib.model import Markers
from distrib.render.email import _sample_posts, render_edition
from distrib.serve import make_server
from distrib.tracking import ClickTracker, sign
from tests.conftest import FIXED_NOW, run_distrib

TRACKING = "[tracking]\nclicks = true\n"
BASE = "https://test.example"
TRACKED = re.compile(re.escape(BASE) + r"/c/(\d+)/(\d+)/([A-Za-z0-9_-]{22})")
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0"}
NOTE = (
    "Write to [the desk](mailto:desk@test.example), read [the report]"
    "(https://council.example/report?year=2026&part=2), or [unsubscribe]"
    "(https://test.example/unsubscribe?token=abc)."
)


def _parts(eml: Path) -> tuple[str, str]:
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    found = {p.get_content_type(): p.get_content() for p in msg.walk() if not p.is_multipart()}
    return found["text/html"], found["text/plain"]


# --- rendering ---------------------------------------------------------------------------


def test_every_content_link_is_rewritten_once_and_the_per_reader_ones_are_not(make_config):
    settings = load_config(make_config(TRACKING))
    posts = _sample_posts(FIXED_NOW)
    markers = Markers.new()
    digest = settings.data["digest"]
    plain = render_edition(
        settings, posts, newsletter=digest, name="digest", now=FIXED_NOW, markers=markers, note=NOTE
    )
    tracker = ClickTracker(BASE, b"k" * 32, 7)
    tracked = render_edition(
        settings,
        posts,
        newsletter=digest,
        name="digest",
        now=FIXED_NOW,
        markers=markers,
        note=NOTE,
        clicks=tracker,
    )
    links = tracked.links
    assert links and len(set(links)) == len(links)  # one number per URL
    assert "https://council.example/report?year=2026&part=2" in links
    assert not any(u.startswith("mailto:") or "/unsubscribe" in u for u in links)
    assert not any(markers.nonce in u for u in links)

    def back(m: re.Match[str]) -> str:
        edition, n, sig = int(m.group(1)), int(m.group(2)), m.group(3)
        assert edition == 7
        url = links[n - 1]
        assert sig == sign(b"k" * 32, 7, n, url)
        return url

    # Every link put back is the untracked edition: each href maps to the one it
    # replaced, in order, and nothing else of the HTML or the text changed.
    assert _same_hrefs(tracked.html, plain.html, links)
    no_hrefs = re.compile(r'href="[^"]*"')
    assert no_hrefs.sub('href=""', tracked.html) == no_hrefs.sub('href=""', plain.html)
    assert TRACKED.sub(back, tracked.text) == plain.text
    for m in TRACKED.finditer(tracked.html):
        back(m)
    # No link left untracked but the per-reader ones and mailto.
    for href in re.findall(r'href="([^"]*)"', tracked.html):
        assert (
            TRACKED.fullmatch(href)
            or href.startswith("mailto:")
            or markers.url in href
            or markers.prefs in href  # the reader's preferences page
            or (href == "https://test.example/unsubscribe?token=abc")
        ), href
    for url in re.findall(r"https?://\S+", tracked.text):
        assert TRACKED.match(url) or "/unsubscribe" in url, url
    assert markers.url in tracked.html and markers.url in tracked.text
    assert markers.prefs in tracked.html and markers.prefs in tracked.text
    assert tracked.full_keys == plain.full_keys and tracked.subject == plain.subject


def _same_hrefs(tracked: str, plain: str, links: tuple[str, ...]) -> bool:
    def orig(h: str) -> str:
        m = TRACKED.fullmatch(html.unescape(h))
        return links[int(m.group(2)) - 1] if m else html.unescape(h)

    ours = [orig(h) for h in re.findall(r'href="([^"]*)"', tracked)]
    theirs = [html.unescape(h) for h in re.findall(r'href="([^"]*)"', plain)]
    return ours == theirs


def test_tracking_off_leaves_the_links_alone(make_config):
    settings = load_config(make_config())
    with make_app(settings.path) as app:
        app.lock()
        app.run()
    html_part, text_part = _parts(next(Path("outbox").glob("*.eml")))
    assert "/c/" not in html_part and "/c/" not in text_part
    with open_ledger(Path("distrib.sqlite")) as led:
        assert led.link_clicks(1) == []


def test_clicks_without_a_public_url_is_a_config_error(make_config):
    email = (
        '[email]\nmailer = "outbox"\nfrom = "Test News <news@test.example>"\n'
        'recipients = ["a@example.com"]\n'
    )
    path = make_config(TRACKING, email=email)
    proc = run_distrib("run", "--config", str(path))
    assert proc.returncode == 2
    assert "tracking.clicks" in proc.stderr and "base_url" in proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "tracking" in line]
    assert len(lines) == 1


# --- the redirect ------------------------------------------------------------------------


@dataclass
class Tracked:
    url: str
    ledger: str
    config: Path
    html: str
    text: str
    links: list[tuple[int, str, int]]

    def hrefs(self) -> list[str]:
        return [h for h in re.findall(r'href="([^"]*)"', self.html) if TRACKED.fullmatch(h)]

    def local(self, tracked_url: str) -> str:
        return tracked_url.removeprefix(BASE)

    def clicks(self) -> dict[int, int]:
        led = _open(self.ledger)
        try:
            return {n: c for n, _u, c in led.link_clicks(1)}
        finally:
            led.close()


def _open(where: str):
    if where.startswith("postgresql://"):
        from distrib.ledger.postgres import open_postgres

        return open_postgres(where)
    return open_ledger(Path(where))


def _serve(settings, where: str) -> tuple[object, threading.Thread]:
    server = make_server(settings, where, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


def _stop(server, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def tracked(
    make_config,
    ledger_backend: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Tracked]:
    """An edition sent with tracking on to the outbox, and `distrib serve` answering."""
    if ledger_backend == "postgresql":
        where = request.getfixturevalue("pg_url")
        monkeypatch.setenv("DISTRIB_TEST_PG", where)
        extra = TRACKING + '[ledger]\nurl_env = "DISTRIB_TEST_PG"\n'
    else:
        where = str(Path("distrib.sqlite").resolve())
        extra = TRACKING
    path = make_config(extra)
    with make_app(path) as app:
        app.lock()
        result = app.run()
    assert not result.errors, result.errors
    html_part, text_part = _parts(sorted(Path("outbox").glob("*.eml"))[0])
    led = _open(where)
    try:
        links = led.link_clicks(1)
    finally:
        led.close()
    server, thread = _serve(load_config(path), where)
    try:
        yield Tracked(server.url, where, path, html_part, text_part, links)  # type: ignore[attr-defined]
    finally:
        _stop(server, thread)


def _raw(url: str, target: str, method: str = "GET") -> tuple[int, dict[str, str]]:
    """One request with the target exactly as written (no client normalisation)."""
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: test.example\r\nUser-Agent: {BROWSER['User-Agent']}"
            "\r\nConnection: close\r\n\r\n".encode("latin-1")
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    return status, headers


def test_a_click_redirects_to_the_original_and_is_counted(tracked: Tracked):
    hrefs = tracked.hrefs()
    assert hrefs, "no tracked link in the HTML"
    urls = {n: u for n, u, _c in tracked.links}
    with httpx.Client(base_url=tracked.url, timeout=10, headers=BROWSER) as http:
        for href in hrefs[:3]:
            m = TRACKED.fullmatch(href)
            assert m is not None
            r = http.get(tracked.local(href))
            assert r.status_code == 302
            assert r.headers["location"] == urls[int(m.group(2))]
        # The text part's links are the same numbers.
        text_links = TRACKED.findall(tracked.text)
        assert text_links and {int(n) for _e, n, _s in text_links} <= set(urls)
        first = TRACKED.fullmatch(hrefs[0])
        assert first is not None
        n = int(first.group(2))
        before = tracked.clicks()[n]
        http.get(tracked.local(hrefs[0]))
        assert tracked.clicks()[n] == before + 1
        # A HEAD, a prefetch and a known scanner are redirected, not counted.
        assert http.head(tracked.local(hrefs[0])).status_code == 302
        r = http.get(tracked.local(hrefs[0]), headers={"Sec-Purpose": "prefetch"})
        assert r.status_code == 302
        r = http.get(tracked.local(hrefs[0]), headers={"User-Agent": "Mimecast URL Protect"})
        assert r.status_code == 302
        assert tracked.clicks()[n] == before + 1


def test_the_unsubscribe_link_is_not_tracked_in_the_message(tracked: Tracked):
    assert re.search(r'href="https://test\.example/unsubscribe\?token=[^"]+"', tracked.html)
    assert re.search(r"Unsubscribe: https://test\.example/unsubscribe\?token=\S+", tracked.text)
    assert not any("unsubscribe" in u for _n, u, _c in tracked.links)


def test_anything_but_a_link_of_the_edition_is_404_and_never_a_redirect(tracked: Tracked):
    with open_ledger_for(tracked) as led:
        # A second edition whose one link goes elsewhere.
        other = led.next_edition_id()
        led.set_edition_links(other, ["https://evil.example/"])
        led.create_edition("digest", ["x"], "Other", "", "<p>x</p>", "x\n", edition_id=other)
    from distrib.tracking import click_key

    with open_ledger_for(tracked) as led:
        key = click_key(led)
    n, url, _ = tracked.links[0]
    good = f"/c/1/{n}/{sign(key, 1, n, url)}"
    last = len(tracked.links)
    other_sig = sign(key, other, 1, "https://evil.example/")
    second_sig = sign(key, 1, 2, tracked.links[1][1])
    attacks = [
        good[:-1] + ("A" if good[-1] != "A" else "B"),  # a changed signature
        f"/c/1/{n}/{other_sig}",  # the signature of another edition's link
        f"/c/{other}/1/{sign(key, 1, n, url)}",  # this link's signature on the other edition
        f"/c/1/{n}/{second_sig}",  # the signature of another link of the edition
        f"/c/99/{n}/{sign(key, 99, n, url)}",  # an edition that does not exist
        f"/c/1/{last + 1}/{sign(key, 1, last + 1, url)}",  # a link that does not exist
        f"/c/4294967296/1/{sign(key, 4294967296, 1, url)}",  # beyond any integer column
        f"/c/99999999999999999999/1/{sign(key, 1, n, url)}",
        f"/c/1/99999999999/{sign(key, 1, n, url)}",
        f"/c/01/{n}/{sign(key, 1, n, url)}",  # not the one spelling
        f"/c/-1/{n}/{sign(key, 1, n, url)}",
        f"/c/1%2F{n}/{sign(key, 1, n, url)}",  # an encoded slash
        f"/c/1/{n}%2F/{sign(key, 1, n, url)}",
        good + "%2F",
        good + "/",
        good + "/https://evil.example/",
        good.replace("/c/", "/c//"),
        f"//evil.example{good}",
        f"/c/1/{n}/{sign(key, 1, n, url)}%00",
        f"/c/1/{n}/https:%2F%2Fevil.example",
        "/c/1/1/" + "A" * 22,
        "/c/1/1/" + "A" * 5000,
        "/c/%2e%2e/1/" + "A" * 22,
        "/c/1/1",
        "/c/",
    ]
    for target in attacks:
        status, headers = _raw(tracked.url, target)
        assert status == 404, (target, status)
        assert "location" not in headers, target
    # The good one still works, and a query changes nothing of where it goes.
    status, headers = _raw(tracked.url, good + "?next=//evil.example/")
    assert status == 302 and headers["location"] == url
    status, headers = _raw(tracked.url, good)
    assert status == 302 and headers["location"] == url
    # Nothing of all that was counted but the two real clicks.
    assert tracked.clicks()[n] == 2
    assert sum(tracked.clicks().values()) == 2


def open_ledger_for(t: Tracked):
    return _open(t.ledger)


def test_counts_survive_a_restart_and_show_in_status_links(tracked: Tracked):
    href = tracked.hrefs()[0]
    m = TRACKED.fullmatch(href)
    assert m is not None
    n = int(m.group(2))
    with httpx.Client(base_url=tracked.url, timeout=10, headers=BROWSER) as http:
        for _ in range(3):
            assert http.get(tracked.local(href)).status_code == 302
    server, thread = _serve(load_config(tracked.config), tracked.ledger)
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers=BROWSER) as http:  # type: ignore[attr-defined]
            r = http.get(tracked.local(href))
            assert r.status_code == 302
    finally:
        _stop(server, thread)
    assert tracked.clicks()[n] == 4
    proc = run_distrib("status", "--links", "--config", str(tracked.config))
    assert proc.returncode == 0, proc.stderr
    url = dict((k, u) for k, u, _c in tracked.links)[n]
    assert re.search(rf"^\s+4  #{n}\s+{re.escape(url)}$", proc.stdout, re.M), proc.stdout
    assert "clicks in edition 1 [digest]" in proc.stdout
    data = json.loads(
        run_distrib("status", "--links", "--json", "--config", str(tracked.config)).stdout
    )
    counted = {link["link"]: link["clicks"] for link in data["links"][0]["links"]}
    assert counted[n] == 4 and data["editions"][0]["edition"] == 1


# --- bounce and complaint rates in `distrib status` ------------------------------------


def test_status_shows_rates_from_the_webhooks_and_warns_past_the_bulk_sender_limits(
    make_config, monkeypatch: pytest.MonkeyPatch
):
    from distrib import subscribers as subs
    from tests.signup.test_hooks import (
        HOOKS,
        MAILGUN_KEY,
        POSTMARK_AUTH,
        _basic,
        mailgun,
        postmark_bounce,
        postmark_complaint,
    )

    monkeypatch.setenv("DISTRIB_PM_AUTH", POSTMARK_AUTH)
    monkeypatch.setenv("DISTRIB_MG_KEY", MAILGUN_KEY)
    email = (
        '[email]\nmailer = "outbox"\nfrom = "Test News <news@test.example>"\n'
        'unsubscribe_url = "https://test.example/unsubscribe?token={token}"\n'
    )
    path = make_config(HOOKS, email=email)
    people = [f"reader{i}@example.org" for i in range(200)]
    with open_ledger(Path("distrib.sqlite")) as led:
        for address in people:
            subs.add(led, address)
    with make_app(path) as app:
        app.lock()
        assert not app.run().errors
    quiet = run_distrib("status", "--config", str(path))
    assert quiet.returncode == 0 and "warning" not in quiet.stdout, quiet.stdout
    server, thread = _serve(load_config(path), str(Path("distrib.sqlite").resolve()))
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:  # type: ignore[attr-defined]
            for address in people[:5]:  # 5 of 200: 2.5% hard bounces
                r = http.post(
                    "/hooks/postmark", json=postmark_bounce(address), headers=_basic(POSTMARK_AUTH)
                )
                assert r.status_code == 200
            r = http.post(
                "/hooks/postmark",
                json=postmark_bounce(people[10], "SoftBounce"),
                headers=_basic(POSTMARK_AUTH),
            )
            assert r.status_code == 200
            r = http.post("/hooks/mailgun", json=mailgun(people[20], "complained"))
            assert r.status_code == 200  # 1 of 200: 0.5% complaints
            r = http.post(
                "/hooks/postmark", json=postmark_complaint(people[21]), headers=_basic("x:y")
            )
            assert r.status_code == 403  # a forged report counts for nothing
    finally:
        _stop(server, thread)
    proc = run_distrib("status", "--config", str(path))
    assert proc.returncode == 0, proc.stderr  # warnings do not change the exit code
    out = proc.stdout
    assert "5 hard bounces (2.50%), 1 soft bounces, 1 complaints (0.50%)" in out, out
    warnings = [line.strip() for line in out.splitlines() if "warning:" in line]
    assert len(warnings) == 2, out
    complaint, bounce = warnings
    assert "edition 1 [digest]" in complaint and "0.3%" in complaint and "opt-in" in complaint
    assert "edition 1 [digest]" in bounce and "2%" in bounce and "list" in bounce
    assert "Gmail and Yahoo" in complaint and "Gmail and Yahoo" in bounce
    data = json.loads(run_distrib("status", "--json", "--config", str(path)).stdout)
    row = data[0]
    assert (row["sent"], row["bounced"], row["soft_bounced"], row["complained"]) == (200, 5, 1, 1)
    assert (row["bounce_rate"], row["complaint_rate"]) == (2.5, 0.5)
    assert len(row["warnings"]) == 2


@pytest.mark.parametrize(
    ("bounced", "complained", "warned"),
    [(20, 3, 0), (21, 3, 1), (20, 4, 1), (40, 10, 2), (0, 0, 0)],
)
def test_the_warnings_start_just_past_the_limits(bounced: int, complained: int, warned: int):
    from distrib.app import feedback_warnings

    row = {"edition": 3, "newsletter": "digest", "bounced": bounced, "complained": complained}
    row |= {"bounce_rate": bounced / 10, "complaint_rate": complained / 10}
    assert len(feedback_warnings(row, 1000)) == warned  # 2.0% and 0.3% exactly are within
