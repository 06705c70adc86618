"""The editor's hand on an edition: a note, pins and skips, a sponsor block, approval.

- The note is Markdown (``distrib send --note FILE``, kept in the ledger for the next
  edition, or ``[digest] intro_file``, read at each render), rendered with raw HTML
  off and then sanitised with the same allowlist as post HTML.
- Pins and skips (``distrib posts --pin KEY`` / ``--skip KEY``) are kept in the ledger
  for the next edition of a newsletter only: the edition that goes out (or, with
  approval, is approved) uses them up.
- The sponsor block comes from ``[digest.sponsor]``.
- With ``approval = true`` an edition waits in the ledger (status ``awaiting``) until
  ``distrib approve N``; :func:`fingerprint` tells whether the note, the picks or the
  sponsor changed since it was rendered, so it is rendered again before it is approved.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .sanitize import absolute_http_url, clean_html, html_to_text, one_line

if TYPE_CHECKING:
    from .ledger import Ledger
    from .model import Post

#: The longest note or sponsor text read: an editor's note, not a post.
MAX_NOTE_BYTES = 64_000


@dataclass(frozen=True)
class EditorInput:
    """What the editor added to one edition."""

    note_markdown: str = ""
    sponsor: Mapping[str, Any] | None = None  # the sponsor view (see sponsor_view)


def markdown_html(text: str, base_url: str | None) -> str:
    """Markdown -> sanitised HTML (raw HTML in the Markdown is shown as text)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    return clean_html(md.render(text), base_url)


_LINK = re.compile(r'<a\b[^>]*?\bhref="([^"]*)"[^>]*>(.*?)</a>', re.S)


def markdown_text(html: str, width: int = 72) -> str:
    """The text part of rendered Markdown: a link's address after its words, each line
    wrapped at ``width`` columns (never inside a word or URL), list items kept apart."""
    import textwrap

    def link(m: re.Match[str]) -> str:
        words, href = m.group(2), m.group(1)
        plain = html_to_text(words)
        return words if plain.strip() == html_to_text(href).strip() else f"{words} ({href})"

    text = html_to_text(_LINK.sub(link, html))
    return "\n".join(
        textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False) if line else ""
        for line in text.split("\n")
    )


def read_markdown(path: Path, what: str) -> str:
    """A Markdown file's text; ConfigError naming ``what`` when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what}: no file at {path}; check the path") from None
    except OSError as e:
        raise ConfigError(f"{what}: cannot read {path} ({e.strerror}); check the path") from None
    if len(data) > MAX_NOTE_BYTES:
        raise ConfigError(
            f"{what}: {path} is over {MAX_NOTE_BYTES // 1000} KB; a note is a few paragraphs"
        )
    return data.decode("utf-8", errors="replace")


def note_of(opts: Mapping[str, Any], ledger_note: str) -> str:
    """The edition's note: the one given with ``send --note``, else ``intro_file``."""
    if ledger_note.strip():
        return ledger_note
    path = opts.get("intro_file")
    if path:
        if not Path(path).exists():
            return ""  # the note is there while the file is: removing it ends the note
        return read_markdown(Path(path), "digest.intro_file")
    return ""


def sponsor_view(opts: Mapping[str, Any], site_url: str, label: str) -> dict[str, Any] | None:
    """The sponsor block as the templates see it, or None when none is configured."""
    sp = opts.get("sponsor") or {}
    text = sp.get("text") or ""
    if sp.get("file"):
        text = read_markdown(Path(sp["file"]), "digest.sponsor.file")
    title = one_line(sp.get("title") or "")
    if not (title or text.strip()):
        return None
    html = markdown_html(text, site_url) if text.strip() else ""
    return {
        "label": one_line(sp.get("label") or "") or label,
        "title": title,
        "html": html,
        "text": markdown_text(html),
        "url": absolute_http_url(sp.get("url")) if sp.get("url") else None,
        "link_text": one_line(sp.get("link_text") or ""),
        "image_url": absolute_http_url(sp.get("image")) if sp.get("image") else None,
    }


# --- picks and the note in the ledger ------------------------------------------------


def picks(ledger: Ledger, newsletter: str) -> tuple[list[str], set[str]]:
    """(pinned keys in order, skipped keys) for the next edition of ``newsletter``."""
    pinned: list[str] = []
    skipped: set[str] = set()
    for key, action in ledger.editor_picks(newsletter):
        (pinned.append(key) if action == "pin" else skipped.add(key))
    return pinned, skipped


def apply_picks(selected: list[Post], pinned: list[Post], skipped: set[str]) -> list[Post]:
    """The edition's posts: the pinned first (in the order pinned), then the selection
    without the skipped.  (Past ``max_posts`` the renderer lists posts as title links.)"""
    pinned_keys = {p.key for p in pinned}
    rest = [p for p in selected if p.key not in pinned_keys and p.key not in skipped]
    return [p for p in pinned if p.key not in skipped] + rest


def fingerprint(
    note: str, pinned: list[str], skipped: set[str], sponsor: Mapping[str, Any] | None
) -> str:
    """A digest of the editor's inputs: a change means the edition must be rendered again."""
    blob = json.dumps(
        {"note": note, "pins": pinned, "skips": sorted(skipped), "sponsor": sponsor},
        sort_keys=True, ensure_ascii=False, default=str,
    )  # fmt: skip
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]
