"""The web archive of sent editions: one page per edition, an index, an Atom feed.

``distrib archive --out DIR`` writes::

    DIR/index.html          every edition, newest first
    DIR/feed.xml            an Atom feed of editions (RFC 4287)
    DIR/<edition id>/index.html

Publish DIR at ``[theme] archive_url``; an edition's "view in browser" link is
``<archive_url>/<edition id>/`` (:func:`edition_url`).  The pages are the stored HTML of
each edition, the bytes that were sent, with the per-recipient placeholders replaced
by neutral values: the unsubscribe link points at the site and no address is shown.
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

from .model import Edition, Markers
from .render.css import css_value
from .render.theme import theme_for

if TYPE_CHECKING:
    from .config import Settings

ATOM_NS = "http://www.w3.org/2005/Atom"
#: The footer's "This email was sent to ..." sentence, marked by the default templates.
_RECIPIENT_RE = re.compile(r'<span class="d-recipient">.*?</span>\s*', re.S)


def archive_base(settings: Settings) -> str:
    """``[theme] archive_url``, else ``<site url>/newsletter/``; always ends in '/'."""
    theme = settings.data.get("theme") or {}
    base: str = (
        theme.get("archive_url") or settings.data["site"]["url"].rstrip("/") + "/newsletter/"
    )
    return base if base.endswith("/") else base + "/"


def edition_url(settings: Settings, edition_id: int) -> str:
    """The public URL of an edition's archive page (the email's "view in browser" link)."""
    return f"{archive_base(settings)}{edition_id}/"


def public_html(settings: Settings, html: str, markers: Markers) -> str:
    """An edition's HTML made fit for the public web: no recipient, no personal link."""
    html = _RECIPIENT_RE.sub("", html)
    return markers.fill(html, url=html_lib.escape(settings.data["site"]["url"]), email="")


def public_text(settings: Settings, text: str, markers: Markers) -> str:
    return markers.fill(text, url=settings.data["site"]["url"], email="you")


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def write_archive(settings: Settings, editions: list[Edition], out_dir: Path) -> list[Path]:
    """Write the archive of ``editions`` into ``out_dir``; return the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    ordered = sorted(editions, key=lambda e: (_utc(e.created), e.id), reverse=True)
    feed_href = archive_base(settings) + "feed.xml"
    for e in ordered:
        page = out_dir / str(e.id) / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        body = public_html(settings, e.html, e.markers)
        # Let browsers and feed readers find the feed from any edition page.
        link = f'<link rel="alternate" type="application/atom+xml" href="{html_lib.escape(feed_href)}" />'
        body = body.replace("</head>", link + "</head>", 1)
        page.write_text(body, encoding="utf-8")
        written.append(page)
    index = out_dir / "index.html"
    index.write_text(_index_html(settings, ordered, feed_href), encoding="utf-8")
    written.append(index)
    feed = out_dir / "feed.xml"
    feed.write_bytes(_atom(settings, ordered, feed_href))
    written.append(feed)
    return written


def _index_html(settings: Settings, editions: list[Edition], feed_href: str) -> str:
    theme = theme_for(settings)
    site = settings.data["site"]
    esc = html_lib.escape
    items = "\n".join(
        f'<li><a href="{e.id}/">{esc(e.subject)}</a>'
        f'<span class="date">{esc(theme.format_date(e.created, "long"))}</span>'
        + (f"<p>{esc(e.preheader)}</p>" if e.preheader else "")
        + "</li>"
        for e in editions
    )
    title = f"{site['name']} · {theme.t('archive')}"
    return f"""<!doctype html>
<html lang="{esc(theme.language)}" dir="{theme.direction}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<link rel="alternate" type="application/atom+xml" title="{esc(title)}" href="{esc(feed_href)}">
<style>
body {{ margin: 0; background: {css_value(theme.background_color)}; color: {css_value(theme.text_color)};
  font: 17px/1.6 {css_value(theme.font_family)}; }}
header {{ background: {css_value(theme.brand_color)}; color: #fff; padding: 28px 20px; }}
header a {{ color: #fff; text-decoration: none; }}
h1 {{ margin: 0 auto; max-width: 640px; font-size: 28px; }}
main {{ max-width: 640px; margin: 0 auto; padding: 12px 20px 40px; }}
ul {{ list-style: none; margin: 0; padding: 0; }}
li {{ background: #fff; border-radius: 8px; padding: 16px 18px; margin: 14px 0; }}
li a {{ color: {css_value(theme.brand_color)}; font-weight: 700; font-size: 19px; text-decoration: none; }}
.date {{ display: block; color: #616e7c; font-size: 14px; }}
li p {{ margin: 6px 0 0; }}
footer {{ color: #616e7c; font-size: 14px; }} footer a {{ color: {css_value(theme.brand_color)}; }}
@media (prefers-color-scheme: dark) {{
  body {{ background: #0f1419; color: #e4e7eb; }} li {{ background: #1a2027; }} li a {{ color: #8fb8ff; }}
}}
</style>
</head>
<body>
<header><h1><a href="{esc(site["url"])}">{esc(site["name"])}</a> · {esc(theme.t("archive"))}</h1></header>
<main>
<ul>
{items}
</ul>
<footer><a href="{esc(feed_href)}">Atom</a></footer>
</main>
</body>
</html>
"""


def _atom(settings: Settings, editions: list[Edition], feed_href: str) -> bytes:
    """An Atom 1.0 feed (RFC 4287) of the editions, newest first."""
    theme = theme_for(settings)
    site = settings.data["site"]
    ET.register_namespace("", ATOM_NS)

    def el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            node.text = text
        return node

    feed = ET.Element(
        f"{{{ATOM_NS}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": theme.language}
    )
    el(feed, "id", archive_base(settings))
    el(feed, "title", f"{site['name']} · {theme.t('archive')}")
    updated = max((_utc(e.created) for e in editions), default=datetime(1970, 1, 1, tzinfo=UTC))
    el(feed, "updated", updated.isoformat().replace("+00:00", "Z"))
    el(feed, "link", rel="self", href=feed_href)
    el(feed, "link", rel="alternate", type="text/html", href=archive_base(settings))
    author = el(feed, "author")
    el(author, "name", site["name"])
    el(author, "uri", site["url"])
    for e in editions:
        entry = el(feed, "entry")
        url = edition_url(settings, e.id)
        el(entry, "id", url)
        el(entry, "title", e.subject)
        el(entry, "link", rel="alternate", type="text/html", href=url)
        when = _utc(e.created).isoformat().replace("+00:00", "Z")
        el(entry, "published", when)
        el(entry, "updated", when)
        if e.preheader:
            el(entry, "summary", e.preheader)
    xml: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return xml + b"\n"
