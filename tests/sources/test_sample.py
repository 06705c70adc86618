"""The bundled sample site: enough real-looking posts, dates that follow the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import mjml

from distrib.sanitize import html_to_text

from .conftest import source_of


def test_sample_posts_follow_the_clock(make_ctx) -> None:
    for now in (datetime(2026, 11, 28, 9, 30, tzinfo=UTC), datetime(2031, 2, 3, 0, 0, tzinfo=UTC)):
        ctx = make_ctx(now=now)
        posts = source_of(ctx).fetch()
        newest = max(p.published for p in posts)
        oldest = min(p.published for p in posts)
        assert newest == now - timedelta(hours=2)
        assert timedelta(days=8) <= newest - oldest <= timedelta(days=12)
        assert all(p.updated is None or p.updated <= newest for p in posts)


def test_sample_is_a_realistic_site(make_ctx) -> None:
    posts = source_of(make_ctx()).fetch()
    assert len(posts) >= 14
    assert len({p.author for p in posts}) >= 5
    assert len({p.key for p in posts}) == len(posts)
    for p in posts:
        words = len(html_to_text(p.content).split())
        assert 150 <= words <= 400, (p.title, words)
        assert p.url.startswith("https://harbourlight.example/")
        assert p.tags and p.categories and p.summary
    with_images = [p for p in posts if p.image]
    assert len(with_images) >= 10
    assert all(p.image.url.startswith("https://") and p.image.alt for p in with_images)
    langs = {p.url.split("/")[3] for p in posts}
    assert {"uk", "ar", "es"} <= langs
    arabic = next(p for p in posts if "/ar/" in p.url)
    assert 'dir="rtl"' in arabic.content
    tricky = next(p for p in posts if "chowder" in p.url)
    assert tricky.title == '"Best chowder in town?" Locals vote & the winner is… 🐟'


def test_sample_content_compiles_in_mjml(make_ctx) -> None:
    posts = source_of(make_ctx()).fetch()
    body = "".join(f"<mj-text>{p.content}</mj-text>" for p in posts)
    html = mjml.mjml2html(
        f"<mjml><mj-body><mj-section><mj-column>{body}</mj-column></mj-section></mj-body></mjml>"
    )
    assert "Gull Point" in html
