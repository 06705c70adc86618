"""Share-card preflight: what each post's link card will look like on each network.

A network builds the card of a shared link from the page's ``og:*`` tags (X prefers
``twitter:*``; LinkedIn reads only ``og:*``), so a missing image or description, an image
too small or too heavy, or a title longer than the card shows is found here, before the
post is shared.  Pages and images are fetched through the one HTTP client with small
caps (a page 2 MB, an image 10 MB); at most ``MAX_POSTS`` posts are looked at.

The limits below are what the networks document or visibly do, rounded; a card may
still differ in a network's app.  Lengths count characters.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from .http import FetchError, HttpClient
from .sanitize import absolute_http_url, one_line

MAX_POSTS = 10
PAGE_MAX_BYTES = 2_000_000
IMAGE_MAX_BYTES = 10_000_000


@dataclass(frozen=True)
class Network:
    name: str
    title_chars: int  # longer titles are cut with an ellipsis in the card
    description_chars: int
    min_width: int  # smaller images: no large card (a thumbnail, or none)
    min_height: int
    max_bytes: int  # heavier images are not shown
    twitter_tags: bool  # reads twitter:* before og:*
    note: str = ""


NETWORKS: tuple[Network, ...] = (
    Network("X", 70, 200, 300, 157, 5_000_000, True, "summary_large_image; 4096x4096 at most"),
    Network(
        "Mastodon", 100, 200, 200, 100, 2_000_000, False, "each server fetches the card itself"
    ),
    Network(
        "Bluesky",
        100,
        300,
        200,
        100,
        1_000_000,
        False,
        "distrib makes the card; a heavier image is re-encoded with Pillow, else dropped",
    ),
    Network(
        "LinkedIn",
        70,
        100,
        401,
        210,
        5_000_000,
        False,
        "a narrower image is a small thumbnail; 1200x627 fills the card",
    ),
    Network("Slack", 150, 300, 200, 100, 5_000_000, True, ""),
)


@dataclass
class Card:
    """One post's card inputs, read from its page, and what each network will show."""

    url: str
    title: str = ""
    description: str = ""
    image: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    image_bytes: int | None = None
    image_error: str = ""
    twitter_title: str = ""
    twitter_description: str = ""
    twitter_image: str | None = None
    error: str = ""
    findings: dict[str, list[str]] = field(default_factory=dict)  # network -> problems

    def for_network(self, net: Network) -> tuple[str, str, str | None]:
        if net.twitter_tags:
            return (self.twitter_title or self.title, self.twitter_description or self.description,
                    self.twitter_image or self.image)  # fmt: skip
        return self.title, self.description, self.image

    def shown(self, net: Network) -> tuple[str, str]:
        """The title and description as the network's card shows them (cut)."""
        title, desc, _ = self.for_network(net)
        return _cut(title, net.title_chars), _cut(desc, net.description_chars)

    @property
    def ok(self) -> bool:
        return not self.error and not any(self.findings.values())


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF, JPEG or WebP from its first bytes; None if unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
        if chunk == b"VP8L":
            b = data[21:25]
            w = 1 + (((b[1] & 0x3F) << 8) | b[0])
            h = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
            return w, h
        if chunk == b"VP8X":
            w = 1 + int.from_bytes(data[24:27], "little")
            h = 1 + int.from_bytes(data[27:30], "little")
            return w, h
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h
            i += 2 + length
    return None


def read_card(url: str, http: HttpClient, images: HttpClient) -> Card:
    """Fetch one post's page (and its image) and judge its card on every network."""
    from .sources.page import parse_page

    card = Card(url)
    try:
        resp = http.get(url, conditional=False)
    except FetchError as e:
        card.error = f"cannot read the page: {e}"
        return card
    info = parse_page(resp.text())
    meta = info.meta
    base = resp.url
    card.title = one_line(meta.get("og:title") or "")
    card.description = one_line(meta.get("og:description") or "")
    card.image = absolute_http_url(meta.get("og:image") or meta.get("og:image:url") or "", base)
    card.twitter_title = one_line(meta.get("twitter:title") or "")
    card.twitter_description = one_line(meta.get("twitter:description") or "")
    card.twitter_image = absolute_http_url(
        meta.get("twitter:image") or meta.get("twitter:image:src") or "", base
    )
    image = card.twitter_image or card.image
    if image:
        try:
            got = images.get(image, conditional=False)
        except FetchError as e:
            card.image_error = e.reason
            if "over" in e.reason and "MB" in e.reason:
                card.image_bytes = IMAGE_MAX_BYTES + 1
        else:
            card.image_bytes = len(got.body)
            size = image_size(got.body)
            if size:
                card.image_width, card.image_height = size
    judge(card)
    return card


def judge(card: Card) -> None:
    """Fill ``card.findings``: per network, what will be missing or cut."""
    for net in NETWORKS:
        problems: list[str] = []
        title, desc, image = card.for_network(net)
        if not title:
            problems.append("no og:title: the network falls back to the page's <title> or the URL")
        elif len(title) > net.title_chars:
            problems.append(
                f"title cut at {net.title_chars} characters (it has {len(title)}): {_cut(title, net.title_chars)!r}"
            )
        if not desc:
            problems.append("no description (og:description)")
        elif len(desc) > net.description_chars:
            problems.append(
                f"description cut at {net.description_chars} characters (it has {len(desc)})"
            )
        if not image:
            problems.append("no image (og:image): a card without a picture")
        elif card.image_error and not card.image_bytes:
            problems.append(f"the image cannot be fetched ({card.image_error})")
        else:
            if card.image_bytes is not None and card.image_bytes > net.max_bytes:
                mb = net.max_bytes / 1_000_000
                problems.append(
                    f"image too large: {card.image_bytes / 1_000_000:.1f} MB, over {mb:g} MB"
                )
            w, h = card.image_width, card.image_height
            if w and h and (w < net.min_width or h < net.min_height):
                problems.append(f"image too small: {w}x{h}, under {net.min_width}x{net.min_height}")
        card.findings[net.name] = problems


def preflight(urls: Iterable[str]) -> list[Card]:
    """The cards of up to MAX_POSTS post pages, each judged for every network."""
    out: list[Card] = []
    with (
        HttpClient(max_bytes=PAGE_MAX_BYTES, timeout=10) as http,
        HttpClient(max_bytes=IMAGE_MAX_BYTES, timeout=10) as images,
    ):
        for url in list(urls)[:MAX_POSTS]:
            out.append(read_card(url, http, images))
    return out


def report_lines(cards: list[Card]) -> list[str]:
    """One line per post and network with a problem; one line per post that is fine."""
    lines: list[str] = []
    for card in cards:
        if card.error:
            lines.append(f"card {card.url}: {card.error}")
            continue
        if card.ok:
            lines.append(f"card {card.url}: fine on {', '.join(n.name for n in NETWORKS)}")
            continue
        for net in NETWORKS:
            for problem in card.findings.get(net.name, []):
                lines.append(f"card {card.url}: {net.name}: {problem}")
    return lines


def cards_html(cards: list[Card], digest: str = "digest.html") -> str:
    """A page with the digest beside each post's card on each network (for `preview --cards`)."""
    from html import escape

    def one(card: Card, net: Network) -> str:
        title, desc = card.shown(net)
        _, _, image = card.for_network(net)
        img = (
            f'<img src="{escape(image)}" alt="">' if image else '<div class="noimg">no image</div>'
        )
        problems = "".join(f"<li>{escape(p)}</li>" for p in card.findings.get(net.name, []))
        return (
            f'<div class="card"><div class="net">{escape(net.name)}</div>{img}'
            f'<div class="t">{escape(title or card.url)}</div><div class="d">{escape(desc)}</div>'
            f"{'<ul>' + problems + '</ul>' if problems else ''}</div>"
        )

    rows: list[str] = []
    for card in cards:
        if card.error:
            rows.append(f'<h3>{escape(card.url)}</h3><p class="err">{escape(card.error)}</p>')
            continue
        rows.append(
            f'<h3>{escape(card.url)}</h3><div class="row">'
            + "".join(one(card, n) for n in NETWORKS)
            + "</div>"
        )
    style = (
        "body{margin:0;font:14px system-ui,sans-serif;display:flex}"
        "iframe{width:640px;height:100vh;border:0;border-right:1px solid #ddd;flex:none}"
        ".cards{padding:12px 20px;overflow:auto;height:100vh;box-sizing:border-box}"
        ".row{display:flex;flex-wrap:wrap;gap:10px}.card{width:220px;border:1px solid #ccd;border-radius:10px;overflow:hidden}"
        ".card img{width:100%;aspect-ratio:1.91;object-fit:cover;display:block}.noimg{aspect-ratio:1.91;background:#eee;"
        "display:flex;align-items:center;justify-content:center;color:#888}.net{font-weight:700;padding:4px 8px;background:#f4f5f7}"
        ".t{font-weight:600;padding:6px 8px 0}.d{color:#555;padding:2px 8px 8px}ul{margin:0;padding:4px 8px 8px 24px;color:#b42318}.err{color:#b42318}"
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Share cards</title><style>{style}</style></head>'
        f'<body><iframe src="{escape(digest)}" title="the digest"></iframe><div class="cards"><h2>Share cards</h2>'
        + "".join(rows)
        + "</div></body></html>"
    )
