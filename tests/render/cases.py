"""Fixed inputs shared by the render tests and the golden regenerator (no pytest here).

Everything is fixed: posts, clock, config, so MRML's byte-stable output can be
compared exactly with tests/render/golden/.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from distrib.config import Settings, load_config
from distrib.model import Image, Post

FIXED_NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
WEB_URL = "https://news.harbour.example/newsletter/7/"

BASE_CONFIG = """
[site]
name = "The Harbour Ledger"
url = "https://news.harbour.example/"
postal_address = "12 Quay Street, Portsmouth PO1 2AB, United Kingdom"
logo = "https://news.harbour.example/static/logo.png"
{site}

[[sources]]
name = "blog"
type = "feed"
path = "feed.xml"

[email]
from = "The Harbour Ledger <news@harbour.example>"
unsubscribe_url = "https://news.harbour.example/unsubscribe?token={{token}}"

{extra}
"""


def settings_from(directory: Path, extra: str = "", *, site: str = "") -> Settings:
    path = directory / "distrib.toml"
    path.write_text(
        BASE_CONFIG.format(
            site=textwrap.dedent(site)
            if "timezone" in site
            else site + '\ntimezone = "Europe/London"',
            extra=textwrap.dedent(extra),
        ),
        encoding="utf-8",
    )
    return load_config(path)


_TITLES = [
    "Harbour wall extension approved after three-year dispute",
    "Night ferry returns to the island timetable",
    "Fish market reopens with a roof that collects rain",
    "Council publishes the flood map residents asked for",
    "Lifeboat crew rescue two kayakers off Sandy Point",
    "A century of the lighthouse keeper's log, now online",
]
_CATEGORIES = ["Politics", "Transport", "Business", "Environment", None, "Culture"]
_AUTHORS = ["Maya Okafor", "Tomás Reyes", "Ines Walcott", "Daniel Brooks"]
_PARAGRAPH = (
    "The council voted on Tuesday to extend the harbour wall by forty metres, ending a dispute "
    "that had run for three years. Residents on the seafront say the new section will protect "
    "their homes from winter storms, which flooded twelve houses last January. Critics argue that "
    "the cost was never properly explained, and that the fishing fleet will lose four berths. "
)


def make_posts(n: int, *, lang: str = "en", images: bool = True) -> list[Post]:
    """``n`` realistic posts, newest first, 5 hours apart, ending at FIXED_NOW - 1h."""
    posts = []
    for i in range(n):
        title, body, category = (
            _TITLES[i % len(_TITLES)],
            _PARAGRAPH,
            _CATEGORIES[i % len(_CATEGORIES)],
        )
        if lang == "ar":
            title = "المجلس يوافق على توسيع جدار الميناء بعد نزاع دام ثلاث سنوات"
            body = (
                "صوّت المجلس يوم الثلاثاء على تمديد جدار الميناء أربعين متراً، منهياً نزاعاً استمر "
                "ثلاث سنوات. يقول السكان إن القسم الجديد سيحمي المنازل من عواصف الشتاء. "
            )
            category = "سياسة" if category else None
        elif lang == "ja":
            title = "港の防波堤延長を承認、三年越しの論争に決着"
            body = "市議会は火曜日、港の防波堤を四十メートル延長することを可決し、三年にわたる論争に終止符を打った。住民は新しい区間が冬の嵐から家を守ると話している。"
            category = "政治" if category else None
        if n > len(_TITLES):
            title = f"{title} ({i + 1})"
        posts.append(
            Post(
                key=f"https://news.harbour.example/posts/{i + 1}/",
                url=f"https://news.harbour.example/posts/{i + 1}/?ref=feed&amp=1",
                title=title,
                source="blog",
                summary="",
                content=f"<p>{body * 3}</p><p>{body * 2}</p>",
                author=_AUTHORS[i % len(_AUTHORS)],
                published=FIXED_NOW - timedelta(hours=1 + 5 * i),
                tags=(("harbour", "council", "storms", "budget", "fleet")[: 1 + i % 3]),
                categories=(category,) if category else (),
                image=(
                    Image(
                        f"https://news.harbour.example/media/{i + 1}.jpg",
                        alt="" if i % 3 == 1 else "Waves break over the old harbour wall",
                    )
                    if images and i % 4 != 3
                    else None
                ),
            )
        )
    return posts
