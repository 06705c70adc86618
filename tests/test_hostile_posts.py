"""A post cannot pull subscriber data into the message.

The renderer leaves gaps for each reader's address and signed unsubscribe URL.  A feed
whose every field carries text that looks like those gaps (the fixed strings of older
versions, and a guess at the new form) is sent over real SMTP to several readers: each
message must carry the post's text exactly as written, and nothing of any reader where
it was, neither another reader's address nor a token.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import unescape
from pathlib import Path

from distrib.model import PLACEHOLDER_EMAIL, PLACEHOLDER_UNSUBSCRIBE_URL, Markers

from .conftest import SmtpServer, run_distrib
from .test_end_to_end import smtp_config

U, E = PLACEHOLDER_UNSUBSCRIBE_URL, PLACEHOLDER_EMAIL
#: A marker of the new form with a nonce a post might guess.
GUESS = Markers("0" * 32)
BAIT = f"{U} {E} {GUESS.url} {GUESS.email} {GUESS.prefs} XDISTRIBPREFERENCESURLX"
READERS = ["ana@example.com", "bo@example.net", "chen@example.org", "dee@example.com"]


def hostile_feed(path: Path) -> Path:
    items = "".join(
        f"""
  <item>
    <title>Post {i} {BAIT}</title>
    <link>https://tracker.example/p/{i}?u={U}&amp;e={E}&amp;g={GUESS.url}</link>
    <guid isPermaLink="false">hostile-{i}</guid>
    <description>Summary {i}: {BAIT} &lt;img src="https://tracker.example/p.png?u={U}"&gt;</description>
    <author>{E}@example.com ({E} {U})</author>
    <category>{U}</category>
    <category>{E}</category>
    <enclosure url="https://tracker.example/{U}/{E}.jpg?g={GUESS.email}" type="image/jpeg" length="1"/>
    <pubDate>{format_datetime(datetime.now(UTC) - timedelta(hours=i), usegmt=True)}</pubDate>
  </item>"""
        for i in range(1, 4)
    )
    path.write_text(
        f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
  <title>Hostile {U}</title><link>https://test.example/</link><description>x</description>{items}
</channel></rss>
""",
        encoding="utf-8",
    )
    return path


def test_markers_in_every_post_field_stay_inert_over_smtp(
    make_config, smtp_server: SmtpServer, tmp_path: Path
):
    feed = hostile_feed(tmp_path / "feed.xml")
    path = smtp_config(
        make_config, smtp_server, "recipients = [" + ", ".join(f'"{r}"' for r in READERS) + "]"
    )
    text = path.read_text(encoding="utf-8").replace(
        'type = "sample"', f'type = "feed"\npath = "{feed.as_posix()}"'
    )
    path.write_text(text, encoding="utf-8")
    proc = run_distrib("send", "--config", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by_rcpt = smtp_server.by_recipient()
    assert set(by_rcpt) == set(READERS)
    tokens = {}
    for address, got in by_rcpt.items():
        [received] = got
        msg = received.message
        tokens[address] = re.search(r"token=([A-Za-z0-9_.\-]+)", msg["List-Unsubscribe"]).group(1)
    for address, got in by_rcpt.items():
        msg = got[0].message
        plain = msg.get_body(("plain",)).get_content()
        html = unescape(msg.get_body(("html",)).get_content())
        for body in (" ".join(plain.split()), " ".join(html.split())):  # the text part is wrapped
            # The post's text as written.
            assert f"Post 1 {BAIT}" in body and f"Summary 2: {BAIT}" in body
            for others in READERS:
                if others != address:
                    assert others not in body  # no other reader's address
                    assert tokens[others] not in body
            # This reader's own values appear only where the template put them: the
            # footer (one address, one unsubscribe link).
            assert body.count(address) == 1, (address, body.count(address))
            assert body.count(tokens[address]) == 1
        assert f"https://tracker.example/p/1?u={U}&e={E}&g={GUESS.url}" in html
        assert f"https://tracker.example/{U}/{E}.jpg?g={GUESS.email}" in html
        assert f"?u={U}" in html
        # Nothing of the reader in the headers that came from the post either.
        assert msg["Subject"] == f"Test News: Post 1 {BAIT} and 2 more"


def test_fresh_markers_differ_per_render_and_never_repeat():
    seen = {Markers.new().url for _ in range(200)}
    assert len(seen) == 200
    m = Markers.new()
    assert m.url != U and m.email != E and U not in m.url and E not in m.email
    # Filling touches only this pair: the legacy strings and other nonces are text.
    text = f"a {m.url} b {m.email} c {U} {E} {GUESS.url}"
    assert m.fill(text, url="URL", email="MAIL") == f"a URL b MAIL c {U} {E} {GUESS.url}"


def test_listmonk_hand_off_keeps_template_tags_in_post_text_literal():
    """listmonk fills Go template tags per subscriber: a post titled with one must not
    become a tag (it would put each reader's address where the title was)."""
    from distrib.mailers.listmonk import TAGS, fill_tags, go_template_literal

    m = Markers.new()
    html = f'<h2>{{{{ .Subscriber.Email }}}} {U}</h2><a href="{m.url}">x</a> {m.email}'
    out = fill_tags(html, m, TAGS, go_template_literal)
    assert out == (
        '<h2>{{"{{"}} .Subscriber.Email }} '
        + U
        + '</h2><a href="{{ UnsubscribeURL }}">x</a> {{ .Subscriber.Email }}'
    )


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_bidi_overrides_are_removed_from_the_subject_and_every_header(tmp_path: Path):
    """A U+202E in a title makes "Invoice \u202efdp.exe" read "Invoice exe.pdf"."""
    from email import message_from_string, policy

    from distrib.model import Recipient
    from distrib.render.message import prepare_message

    from .mailers.conftest import KEY, make_edition, make_settings

    settings = make_settings(
        tmp_path,
        **{
            "from": "Bad\u202eNews <news@gazette.example.org>",
            "reply_to": "Re\u2066ply <r@gazette.example.org>",
            "unsubscribe_mailto": "u@gazette.example.org",
        },
    )
    settings.data["site"]["name"] = "Gaz\u202dette"
    edition = make_edition("Invoice \u202efdp.exe and " + BIDI + "more")
    prepared = prepare_message(settings, edition, key=KEY)
    raw = prepared.for_recipient(Recipient("ana@example.com", "Ana\u202b\u2069 Lee"))
    msg = message_from_string(raw.decode("utf-8"), policy=policy.default)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    for name, value in msg.items():
        assert not any(c in str(value) for c in BIDI), (name, value)
    assert not any(c in head for c in BIDI)
    assert msg["Subject"] == "Invoice fdp.exe and more"
    assert msg["From"].addresses[0].display_name == "BadNews"
    assert msg["To"].addresses[0].display_name == "Ana Lee"
    assert prepared.subject == "Invoice fdp.exe and more"  # what the ESPs are given too


def test_a_post_title_with_bidi_overrides_renders_a_clean_subject(tmp_path: Path):
    from distrib.model import Post
    from distrib.render.email import render_edition

    from .render.cases import FIXED_NOW, settings_from

    settings = settings_from(tmp_path, "")
    post = Post(
        key="k",
        url="https://x.example/p",
        title="Invoice \u202efdp.exe",
        source="s",
        published=FIXED_NOW,
    )
    r = render_edition(
        settings, [post], newsletter=dict(settings.data["digest"]), name="digest", now=FIXED_NOW
    )
    assert not any(c in r.subject + r.preheader for c in BIDI)
    assert "Invoice fdp.exe" in r.subject


def test_an_edition_recorded_before_markers_had_a_nonce_still_resumes(tmp_path: Path):
    """Upgrading mid-edition: a schema-1 ledger's edition carries the fixed markers; the
    migration keeps it (markers ''), and its messages are personalised as before."""
    import sqlite3

    from distrib.ledger import MIGRATIONS, open_ledger
    from distrib.model import Recipient
    from distrib.render.message import prepare_message

    from .mailers.conftest import KEY, make_settings

    path = tmp_path / "distrib.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute("PRAGMA application_id = 1685288034")
    db.execute(
        "INSERT INTO editions (id, newsletter, subject, preheader, created, html, text) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            1,
            "digest",
            "S",
            "P",
            "2026-11-20T09:30:00+00:00",
            f'<p>to {E}</p><a href="{U}">u</a>',
            f"to {E}\n{U}\n",
        ),
    )
    db.execute("COMMIT")
    db.close()
    with open_ledger(path) as ledger:
        [edition] = ledger.unfinished_editions("digest")
        assert edition.markers == Markers()
        fresh = ledger.create_edition(
            "digest", ["k"], "S2", "P", "<p>x</p>", "x\n", markers=Markers.new()
        )
        assert ledger.get_edition(fresh.id).markers == fresh.markers  # kept with the edition
    prepared = prepare_message(make_settings(tmp_path), edition, key=KEY)
    assert "to ana@example.com" in prepared.text_for(Recipient("ana@example.com"))
    raw = prepared.for_recipient(Recipient("ana@example.com")).decode()
    assert U not in raw and E not in raw and "token=" in raw


def test_buttondown_hand_off_keeps_template_tags_in_post_text_literal():
    from distrib.mailers.buttondown import TAGS, html_literal
    from distrib.mailers.listmonk import fill_tags

    m = Markers.new()
    html = (
        "<style>@media x {{ color: red }}</style>"
        f'<h2>{{{{ subscriber.email }}}} {{% if 1 %}}</h2><a href="/x?{{{{y}}}}">{m.email}</a><a href="{m.url}">u</a>'
    )
    out = fill_tags(html, m, TAGS, html_literal)
    assert out == (
        "<style>@media x {{ color: red }}</style>"
        '<h2>&#123;{ subscriber.email }} &#123;% if 1 %}</h2><a href="/x?&#123;{y}}">{{ subscriber.email }}</a>'
        '<a href="{{ unsubscribe_url }}">u</a>'
    )
