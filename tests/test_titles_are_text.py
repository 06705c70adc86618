"""A title that is text stays text: escaped wherever it is shown, never stripped as markup.

An RSS title "Why &lt;script&gt; tags are dangerous" became "Why tags are dangerous",
and a WordPress title lost its "<with>", in the email and in the share posts.  Here a
real RSS file and a WordPress REST API on 127.0.0.1 go through a whole run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import format_datetime
from pathlib import Path

from pytest_httpserver import HTTPServer

from .conftest import run_distrib


def test_escaped_angle_brackets_in_titles_survive_in_email_and_shares(
    make_config, httpserver: HTTPServer, tmp_path: Path
):
    now = datetime.now(UTC)
    (tmp_path / "feed.xml").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>S</title><link>https://site.example/</link>'
        "<item><title>Why &lt;script&gt; tags are dangerous</title><link>https://site.example/script</link>"
        f"<pubDate>{format_datetime(now - timedelta(hours=1))}</pubDate><description>On escaping.</description></item>"
        "<item><title>Tom &amp;amp; Jerry &amp; the &lt;b&gt;bold&lt;/b&gt; cat</title><link>https://site.example/bold</link>"
        f"<pubDate>{format_datetime(now - timedelta(hours=2))}</pubDate><description>x</description></item>"
        "</channel></rss>",
        encoding="utf-8",
    )
    day = (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S")
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_json(
        [
            {
                "id": 7,
                "date_gmt": day,
                "modified_gmt": day,
                "link": f"{httpserver.url_for('/')}2026/with/",
                "guid": {"rendered": f"{httpserver.url_for('/')}?p=7"},
                "title": {"rendered": "Parsing &lt;with&gt; new tools"},
                "content": {"rendered": "<p>Body.</p>"},
                "excerpt": {"rendered": "<p>Body.</p>"},
            }
        ]
    )
    path = make_config(
        # backfill: the first run shares what exists (by default it takes a baseline).
        '[[channels]]\nname = "share"\ntype = "outbox"\ndir = "outbox/shares"\nbackfill = 5\n',
        sources=f"""
        [[sources]]
        name = "rss"
        type = "feed"
        path = "feed.xml"

        [[sources]]
        name = "wp"
        type = "wordpress"
        url = "{httpserver.url_for("/")}"
        """,
    )
    proc = run_distrib("run", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    [eml, *_] = sorted((tmp_path / "outbox").glob("*.eml"))
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    # (An RSS title of escaped HTML that feedparser reads as HTML keeps its text, not its tags.)
    for title in (
        "Why <script> tags are dangerous",
        "Parsing <with> new tools",
        "Tom & Jerry & the bold cat",
    ):
        escaped = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert escaped in html, title
        assert title in text, title
    assert "<script>" not in html and "<with>" not in html  # shown, never interpreted
    assert "Why <script> tags are dangerous" in str(msg["Subject"])
    shares = [
        json.loads(p.read_text(encoding="utf-8"))
        for p in (tmp_path / "outbox" / "shares").glob("*.json")
    ]
    texts = " ".join(s["text"] for s in shares)
    assert "Why <script> tags are dangerous" in texts and "Parsing <with> new tools" in texts
