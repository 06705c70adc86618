"""A share card: a 1200×630 PNG with the site's name, the post's title, author and date.

Used when a post has no image of its own and a channel has ``share_card = true``.
Drawn with Pillow (the "card" extra) in DejaVu Sans, shipped in distrib/fonts (Bitstream
Vera licence, see distrib/fonts/LICENSE-DejaVu.txt), which covers Latin, Greek,
Cyrillic, Armenian, Georgian, Hebrew and Arabic.  Glyph coverage is checked from the
font's ``cmap`` table before drawing: a title in a script the bundled font lacks (CJK,
Devanagari, Thai...) is drawn with an installed system font that covers it (Noto,
Droid Sans Fallback, WenQuanYi...), or ``card_font``; with none, :class:`CardError`
says what to install, rather than a card of empty boxes.  Complex scripts (Arabic
joining, right-to-left order) are shaped by Pillow's Raqm layout when it is available.
"""

from __future__ import annotations

import functools
import io
import struct
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DistribError
from ..model import Post

if TYPE_CHECKING:
    from PIL.ImageDraw import ImageDraw
    from PIL.ImageFont import FreeTypeFont

WIDTH, HEIGHT = 1200, 630
MARGIN = 72
FONT_DIR = Path(__file__).resolve().parent.parent / "fonts"
BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"
REGULAR = FONT_DIR / "DejaVuSans.ttf"
SYSTEM_FONT_DIRS = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".fonts",
)

BACKGROUND = (17, 34, 51)
ACCENT = (242, 169, 59)
TEXT = (255, 255, 255)
MUTED = (176, 190, 205)


class CardError(DistribError):
    """A share card cannot be drawn (Pillow missing, no font for the title's script)."""


# --- glyph coverage: the font's cmap table ------------------------------------------------


@functools.lru_cache(maxsize=64)
def coverage(path: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(starts, ends) of the code point ranges the font maps (cmap formats 4 and 12).

    https://learn.microsoft.com/typography/opentype/spec/cmap; a .ttc collection is
    read from its first font.
    """
    data = Path(path).read_bytes()
    base = 0
    if data[:4] == b"ttcf":
        base = struct.unpack_from(">I", data, 12)[0]
    num_tables = struct.unpack_from(">H", data, base + 4)[0]
    cmap = None
    for i in range(num_tables):
        tag, _, offset, _ = struct.unpack_from(">4sIII", data, base + 12 + 16 * i)
        if tag == b"cmap":
            cmap = offset
    if cmap is None:
        return (), ()
    n = struct.unpack_from(">H", data, cmap + 2)[0]
    subtables = {}
    for i in range(n):
        platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * i)
        subtables[(platform, encoding)] = cmap + offset
    ranges: list[tuple[int, int]] = []
    for key in ((3, 10), (0, 6), (0, 4), (3, 1), (0, 3), (0, 1)):
        at = subtables.get(key)
        if at is None:
            continue
        fmt = struct.unpack_from(">H", data, at)[0]
        if fmt == 12:
            groups = struct.unpack_from(">I", data, at + 12)[0]
            for g in range(groups):
                start, end, _ = struct.unpack_from(">III", data, at + 16 + 12 * g)
                ranges.append((start, end))
            break
        if fmt == 4:
            seg = struct.unpack_from(">H", data, at + 6)[0] // 2
            ends = struct.unpack_from(f">{seg}H", data, at + 14)
            starts = struct.unpack_from(f">{seg}H", data, at + 16 + 2 * seg)
            ranges.extend((s, e) for s, e in zip(starts, ends, strict=True) if s != 0xFFFF)
            break
    ranges.sort()
    return tuple(s for s, _ in ranges), tuple(e for _, e in ranges)


def missing_glyphs(path: str | Path, text: str) -> set[str]:
    """Characters of ``text`` the font cannot draw (marks, spaces and controls aside)."""
    starts, ends = coverage(str(path))
    out = set()
    for ch in text:
        if unicodedata.category(ch)[0] in "MZC":
            continue
        cp = ord(ch)
        i = bisect_right(starts, cp) - 1
        if i < 0 or cp > ends[i]:
            out.add(ch)
    return out


def _system_fonts() -> Iterable[Path]:
    for d in SYSTEM_FONT_DIRS:
        if d.is_dir():
            for p in sorted(d.rglob("*")):
                if p.suffix.lower() in (".ttf", ".otf", ".ttc"):
                    yield p


def font_for(text: str, preferred: Path, extra: Path | None = None) -> Path:
    """The bundled font if it covers ``text``, else ``extra``, else a system font that does."""
    if not missing_glyphs(preferred, text):
        return preferred
    candidates = ([extra] if extra else []) + list(_system_fonts())
    for path in candidates:
        try:
            if not missing_glyphs(path, text):
                return path
        except (OSError, struct.error):
            continue
    missing = "".join(sorted(missing_glyphs(preferred, text)))[:12]
    raise CardError(
        f"no font can draw {missing!r} for a share card; install a font that covers it "
        f"(apt-get install fonts-noto-core fonts-noto-cjk) or set card_font to a .ttf/.otf file"
    )


# --- drawing ------------------------------------------------------------------------------


def _rtl(text: str) -> bool:
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


def _wrap(draw: ImageDraw, text: str, font: FreeTypeFont, width: int) -> list[str]:
    """Words onto lines no wider than ``width``; a word wider than a line is split by
    grapheme (CJK titles have no spaces)."""
    from .length import graphemes

    words = text.split()
    if len(words) <= 1 or any(len(w) > 12 and not w.isascii() for w in words):
        # scripts without spaces: every grapheme is a break point
        units = graphemes(text)
        joiner = ""
    else:
        units = words
        joiner = " "
    lines: list[str] = []
    line = ""
    for unit in units:
        candidate = (line + joiner + unit) if line else unit.strip()
        if draw.textlength(candidate, font=font) <= width:
            line = candidate
        else:
            if line:
                lines.append(line)
            line = unit.strip()
    if line:
        lines.append(line)
    return lines


def make_card(
    post: Post, site_name: str, *, font: Path | str | None = None, when: datetime | None = None
) -> bytes:
    """The share card of ``post`` as PNG bytes (1200×630)."""
    try:
        from PIL import Image, ImageDraw, ImageFont, features
    except ImportError:
        raise CardError("share cards need Pillow: pip install 'distrib[card]'") from None

    layout = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    extra = Path(font) if font else None
    title = " ".join(post.title.split()) or site_name
    meta_parts = [p for p in (post.author, _date(post.published or when)) if p]
    meta = " · ".join(meta_parts)
    title_font_path = font_for(title, BOLD, extra)
    site_font_path = font_for(site_name, BOLD, extra)
    meta_font_path = font_for(meta, REGULAR, extra) if meta else REGULAR

    img = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 16, HEIGHT), fill=ACCENT)
    width = WIDTH - 2 * MARGIN

    site_font = ImageFont.truetype(str(site_font_path), 34, layout_engine=layout)
    _line(draw, (MARGIN, MARGIN), site_name, site_font, ACCENT, width)

    # The biggest title size whose lines fit between the site name and the byline.
    top, bottom = MARGIN + 80, HEIGHT - MARGIN - 70
    for size in (72, 64, 56, 50, 44, 40, 36):
        title_font = ImageFont.truetype(str(title_font_path), size, layout_engine=layout)
        lines = _wrap(draw, title, title_font, width)
        line_height = int(size * 1.25)
        if len(lines) * line_height <= bottom - top:
            break
    else:
        max_lines = max(1, (bottom - top) // line_height)
        lines = lines[:max_lines]
        while lines and draw.textlength(lines[-1] + "…", font=title_font) > width:
            lines[-1] = lines[-1][:-1]
        lines[-1] = lines[-1].rstrip() + "…"
    y = top
    for text in lines:
        _line(draw, (MARGIN, y), text, title_font, TEXT, width)
        y += line_height

    if meta:
        meta_font = ImageFont.truetype(str(meta_font_path), 30, layout_engine=layout)
        _line(draw, (MARGIN, HEIGHT - MARGIN - 36), meta, meta_font, MUTED, width)

    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _line(
    draw: ImageDraw,
    xy: tuple[int, int],
    text: str,
    font: FreeTypeFont,
    fill: tuple[int, int, int],
    width: int,
) -> None:
    x, y = xy
    if _rtl(text):
        # Right-aligned: a right-to-left title starts at the right margin.
        x = x + width - int(draw.textlength(text, font=font))
        draw.text((x, y), text, font=font, fill=fill, direction="rtl")
    else:
        draw.text((x, y), text, font=font, fill=fill)


def _date(when: datetime | None) -> str:
    return when.strftime("%d %B %Y").lstrip("0") if when else ""
