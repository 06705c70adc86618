"""The fixed editions whose output is kept in tests/render/golden/ (no pytest here)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from distrib.model import Markers, RenderedEdition
from distrib.render.email import render_edition

from .cases import FIXED_NOW, WEB_URL, make_posts, settings_from

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

THEME = """
[theme]
layout = "by-category"

[[theme.social]]
name = "Mastodon"
url = "https://mastodon.example/@harbour"

[[theme.social]]
name = "Bluesky"
url = "https://bsky.app/profile/harbour.example"
"""


def golden_editions() -> dict[str, RenderedEdition]:
    """name -> the edition rendered from fixed posts, config and clock."""
    with tempfile.TemporaryDirectory() as d:
        settings = settings_from(Path(d), THEME)
        digest = dict(settings.data["digest"])
        out = {}
        for name, posts in (("digest", make_posts(6)), ("single", make_posts(1))):
            out[name] = render_edition(
                settings,
                posts,
                newsletter=digest,
                name="digest",
                now=FIXED_NOW,
                web_url=WEB_URL,
                markers=Markers(),  # the fixed pair: the files stay the same from run to run
            )
    return out


def golden_files(editions: dict[str, RenderedEdition]) -> dict[str, str]:
    """file name -> expected content."""
    files = {}
    for name, r in editions.items():
        files[f"{name}.html"] = r.html
        files[f"{name}.txt"] = r.text
        files[f"{name}.headers"] = f"Subject: {r.subject}\nPreheader: {r.preheader}\n"
    return files
