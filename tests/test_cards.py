"""Share-card preflight (`check --cards`, `preview --cards`) against a real site on 127.0.0.1."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from distrib.cards import image_size

from .conftest import run_distrib

PIL = pytest.importorskip(
    "PIL.Image", reason="pip install 'distrib[card]' (Pillow) to make the test images"
)


def _image(w: int, h: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    PIL.new("RGB", (w, h), (20, 90, 160)).save(buf, fmt)
    return buf.getvalue()


LONG_TITLE = "A council meeting that ran far into the night over the harbour wall, the ferry timetable and the new lights"


def serve_site(httpserver: HTTPServer) -> str:
    base = httpserver.url_for("").rstrip("/")
    now = datetime.now(UTC)
    pages = {
        "good": f'<meta property="og:title" content="Harbour wall repairs"><meta property="og:description" content="Work starts in January."><meta property="og:image" content="{base}/img/wide.png">',
        "bare": f'<title>{LONG_TITLE}</title><meta property="og:title" content="{LONG_TITLE}">',
        "small": '<meta property="og:title" content="Small picture"><meta property="og:description" content="d"><meta property="og:image" content="/img/small.jpg">',
        "heavy": '<meta property="og:title" content="Heavy picture"><meta property="og:description" content="d"><meta name="twitter:image" content="/img/heavy.png"><meta property="og:image" content="/img/heavy.png">',
    }
    items = ""
    for i, (slug, head) in enumerate(pages.items()):
        httpserver.expect_request(f"/{slug}/").respond_with_data(
            f"<html><head>{head}</head><body>x</body></html>", content_type="text/html"
        )
        date = (now - timedelta(hours=i + 1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        items += f"<item><title>{slug}</title><link>{base}/{slug}/</link><guid>{base}/{slug}/</guid><pubDate>{date}</pubDate></item>"
    httpserver.expect_request("/feed.xml").respond_with_data(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>S</title><link>{base}/</link><description>d</description>{items}</channel></rss>',
        content_type="application/rss+xml",
    )
    httpserver.expect_request("/img/wide.png").respond_with_data(
        _image(1200, 630), content_type="image/png"
    )
    httpserver.expect_request("/img/small.jpg").respond_with_data(
        _image(120, 80, "JPEG"), content_type="image/jpeg"
    )
    heavy = _image(1200, 630) + b"\0" * 6_000_000  # a 6 MB file (the pixels say 1200x630)
    httpserver.expect_request("/img/heavy.png").respond_with_data(heavy, content_type="image/png")
    return base


def test_check_cards_reports_per_network(httpserver: HTTPServer, make_config) -> None:
    base = serve_site(httpserver)
    path = make_config(
        sources=f'[[sources]]\nname = "blog"\ntype = "feed"\nurl = "{base}/feed.xml"\n'
    )
    proc = run_distrib("check", "--cards", "--no-domain", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"card {base}/good/: fine on X, Mastodon, Bluesky, LinkedIn, Slack" in out
    bare = [line for line in out.splitlines() if line.startswith(f"card {base}/bare/")]
    for net in ("X", "Mastodon", "Bluesky", "LinkedIn", "Slack"):
        assert any(f": {net}: no image (og:image)" in line for line in bare), net
        assert any(f": {net}: no description" in line for line in bare), net
    assert f"card {base}/bare/: X: title cut at 70 characters (it has {len(LONG_TITLE)})" in out
    assert f"card {base}/bare/: Slack: title cut" not in out  # Slack shows 150
    assert f"card {base}/small/: LinkedIn: image too small: 120x80, under 401x210" in out
    assert f"card {base}/small/: X: image too small: 120x80, under 300x157" in out
    heavy = [line for line in out.splitlines() if line.startswith(f"card {base}/heavy/")]
    assert any("Bluesky: image too large: 6." in line and "over 1 MB" in line for line in heavy)
    assert any("Mastodon: image too large" in line for line in heavy)
    assert any("X: image too large: 6.0 MB, over 5 MB" in line for line in heavy)
    assert not any("too small" in line for line in heavy)
    assert "Traceback" not in proc.stderr


def test_preview_cards_shows_them_beside_the_digest(
    httpserver: HTTPServer, make_config, tmp_path: Path
) -> None:
    base = serve_site(httpserver)
    path = make_config(
        sources=f'[[sources]]\nname = "blog"\ntype = "feed"\nurl = "{base}/feed.xml"\n'
    )
    proc = run_distrib("preview", "--cards", "--out", "pv", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "pv" / "cards.html").read_text(encoding="utf-8")
    assert '<iframe src="digest.html"' in page
    assert "Harbour wall repairs" in page and f"{base}/img/wide.png" in page
    assert LONG_TITLE[:60] in page and "…" in page  # cut as X shows it
    assert "no image" in page


def test_a_page_that_cannot_be_read_is_one_line(httpserver: HTTPServer) -> None:
    from distrib.cards import preflight, report_lines

    httpserver.expect_request("/gone/").respond_with_data("", status=404)
    lines = report_lines(preflight([httpserver.url_for("/gone/")]))
    assert len(lines) == 1 and "cannot read the page: HTTP 404" in lines[0]


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "JPEG", "WEBP"])
def test_image_size_reads_the_header(fmt: str) -> None:
    assert image_size(_image(640, 335, fmt)) == (640, 335)
