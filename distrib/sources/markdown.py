"""The Markdown source: a folder of posts with front matter, as Hugo, Jekyll and Eleventy keep them.

Each ``.md`` / ``.markdown`` file under ``path`` (recursively) is one post.  Front
matter is YAML between ``---`` lines or TOML between ``+++`` lines, and only when the
file starts with it; the split happens at the first closing line, so ``---`` later in
the body (a rule, a fenced YAML example) is body.  Skipped: ``draft: true``,
``published: false`` (Jekyll), list pages (``_index.md``), files dated in the future
(Hugo's default), files whose front matter does not parse (logged with the file name).

Fields read: title, date (else a ``YYYY-MM-DD-`` file-name prefix, as Jekyll names
posts), lastmod/updated, tags, categories (or Jekyll's ``category``), summary /
description / excerpt (else the part before ``<!--more-->``), image / cover /
featured_image / images (relative paths resolved against ``base_url``), image_alt,
author / authors, slug, url (an explicit URL path wins over the permalink pattern).
A date without a zone is in ``site.timezone``.

The post URL is ``base_url`` + ``permalink`` with ``{year} {month} {day} {slug}
{section}`` filled in; a post without any date uses ``/{slug}/`` so that its URL (its
key) does not depend on when it was first seen.
"""

from __future__ import annotations

import logging
import re
import tomllib
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urljoin
from zoneinfo import ZoneInfo

from ..adapters import Context, Source
from ..config import Opt, k_path, k_str, k_url
from ..errors import ConfigError, SourceError
from ..model import Image, Post
from ..sanitize import absolute_http_url, clean_html, excerpt, html_to_text, one_line
from .common import canonical_url
from .dates import parse_date
from .feed import SUMMARY_CHARS, _content_images, _unique, derive_title

log = logging.getLogger("distrib.sources")

SUFFIXES = (".md", ".markdown")
_DATE_PREFIX = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)$")
_MORE = re.compile(r"<!--\s*more\s*-->", re.I)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_PLACEHOLDERS = {"year", "month", "day", "slug", "section"}


def split_front_matter(text: str) -> tuple[dict[str, Any], str, str]:
    """(front matter, body, format) of a Markdown file; format is "yaml", "toml" or "".

    Raise ValueError with a short reason when the front matter does not parse.
    """
    text = text.lstrip("\ufeff")
    lines = text.splitlines(keepends=True)
    if not lines:
        return {}, "", ""
    first = lines[0].rstrip("\r\n").rstrip()
    if first not in ("---", "+++"):
        return {}, text, ""
    closers = ("---", "...") if first == "---" else ("+++",)
    for i in range(1, len(lines)):
        if lines[i].rstrip("\r\n").rstrip() in closers:
            raw = "".join(lines[1:i])
            body = "".join(lines[i + 1 :])
            break
    else:
        raise ValueError(f"the front matter opened by {first} is never closed")
    if first == "---":
        import yaml

        try:
            data = yaml.safe_load(raw) if raw.strip() else {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 2}" if mark is not None else ""
            raise ValueError(f"YAML front matter does not parse{where}: {getattr(e, 'problem', None) or e}") from None
        fmt = "yaml"
    else:
        try:
            data = tomllib.loads(raw)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"TOML front matter does not parse: {e}") from None
        fmt = "toml"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError("the front matter is not a mapping of keys to values")
    return data, body, fmt


def render_markdown(text: str) -> str:
    """CommonMark with tables and strikethrough, raw HTML allowed (clean_html runs after)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    return md.render(text)


class MarkdownSource(Source):
    """Posts from a folder of Markdown files with front matter."""

    options: ClassVar[dict[str, Opt]] = {
        "path": Opt(k_path, None, "the folder of Markdown posts (searched recursively)", required=True),
        "base_url": Opt(k_url, None, "the site's address the post URLs start with, such as 'https://example.org/'", required=True),
        "permalink": Opt(
            k_str,
            "/{year}/{month}/{slug}/",
            "the URL path of a post: {year} {month} {day} {slug} {section}",
        ),
    }

    def __init__(self, name: str, options: Any, ctx: Context):
        super().__init__(name, options, ctx)
        unknown = set(_PLACEHOLDER.findall(self.opts.get("permalink") or "")) - _PLACEHOLDERS
        if unknown:
            where = getattr(self.opts, "where", "") or f"sources ({name})"
            raise ConfigError(
                f"{where}.permalink: unknown placeholder {{{sorted(unknown)[0]}}}; use {{year}} {{month}} {{day}} {{slug}} {{section}}"
            )

    @property
    def _zone(self) -> Any:
        try:
            return ZoneInfo(self.ctx.settings.site.timezone or "UTC")
        except Exception:
            return UTC

    def fetch(self) -> list[Post]:
        root = Path(self.opts["path"])
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise SourceError(self.name, f"the Markdown folder {root} {what}; check the path")
        posts = []
        broken: list[str] = []
        for file in sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()):
            try:
                post = self._post(root, file)
            except ValueError as e:
                broken.append(f"{file.relative_to(root)}: {e}")
                log.warning("source %r: skipped %s", self.name, broken[-1])
                continue
            if post is not None:
                posts.append(post)
        if broken and not posts:
            # Nothing usable at all: one error line rather than silently sending nothing.
            more = f" (and {len(broken) - 1} more files)" if len(broken) > 1 else ""
            raise SourceError(self.name, f"{broken[0]}{more}; fix the front matter")
        return posts

    def _post(self, root: Path, file: Path) -> Post | None:
        if file.name.startswith("_index."):
            return None  # a Hugo section's list page, not a post
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8 text") from None
        except OSError as e:
            raise ValueError(e.strerror or str(e)) from None
        fm, body, _ = split_front_matter(text)
        if _truthy(fm.get("draft")) or fm.get("published") is False:
            return None

        stem = file.stem
        rel_parent = file.parent.relative_to(root)
        if stem == "index" and rel_parent.parts:  # a page bundle: the folder is the post
            stem = rel_parent.name
            rel_parent = rel_parent.parent
        prefix = _DATE_PREFIX.match(stem)
        published = self._date(fm.get("date") or fm.get("publishDate") or fm.get("pubDate"))
        if published is None and prefix:
            published = self._date(date(int(prefix[1]), int(prefix[2]), int(prefix[3])))
        if published is not None and published > self.ctx.now:
            return None  # scheduled for later, as Hugo and Jekyll treat it
        updated = self._date(fm.get("lastmod") or fm.get("updated") or fm.get("modified") or fm.get("last_modified_at"))

        slug = _slugify(str(fm.get("slug") or (prefix[4] if prefix else stem)))
        section = rel_parent.parts[0] if rel_parent.parts else ""
        url = self._url(fm, published, slug, section)

        more = _MORE.search(body)
        content = clean_html(render_markdown(body), url)
        summary_src = fm.get("summary") or fm.get("description") or fm.get("excerpt")
        if isinstance(summary_src, str) and summary_src.strip():
            summary = " ".join(html_to_text(render_markdown(summary_src)).split())
        elif more:
            summary = " ".join(html_to_text(clean_html(render_markdown(body[: more.start()]), url)).split())
        else:
            summary = excerpt(html_to_text(content), SUMMARY_CHARS)

        title = one_line(_text(fm.get("title")), markup=False) or _first_heading(body) or derive_title(html_to_text(content))

        return Post(
            key=canonical_url(url),
            url=url,
            title=title,
            source=self.name,
            summary=summary,
            content=content,
            author=_authors(fm),
            published=published,
            updated=updated if updated != published else None,
            tags=_terms(fm.get("tags") or fm.get("keywords")),
            categories=_terms(fm.get("categories") or fm.get("category")),
            image=self._image(fm, content),
        )

    def _date(self, value: Any) -> datetime | None:
        """A front-matter date: YAML/TOML give datetime or date objects, or a string."""
        if isinstance(value, datetime):
            dt = value if value.tzinfo else value.replace(tzinfo=self._zone)
            return dt.astimezone(UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(0, 0), tzinfo=self._zone).astimezone(UTC)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?", text):
                # No zone written: the site's zone, as Hugo and Jekyll read it.
                try:
                    naive = datetime.fromisoformat(text.replace(" ", "T"))
                except ValueError:
                    return None
                return naive.replace(tzinfo=self._zone).astimezone(UTC)
            return parse_date(text)
        return None

    def _url(self, fm: dict[str, Any], published: datetime | None, slug: str, section: str) -> str:
        base = self.opts["base_url"]
        explicit = fm.get("url") or fm.get("permalink")
        if isinstance(explicit, str) and explicit.strip():
            url = absolute_http_url(explicit.strip(), base)
            if url:
                return url
        pattern = self.opts.get("permalink") or "/{year}/{month}/{slug}/"
        needs_date = any(p in pattern for p in ("{year}", "{month}", "{day}"))
        if published is None and needs_date:
            pattern = "/{slug}/"
        local = published.astimezone(self._zone) if published else None
        values = {
            "year": f"{local.year:04d}" if local else "",
            "month": f"{local.month:02d}" if local else "",
            "day": f"{local.day:02d}" if local else "",
            "slug": quote(slug),
            "section": quote(section),
        }
        path = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), pattern)
        path = re.sub(r"/{2,}", "/", path)
        return urljoin(base if base.endswith("/") else base + "/", path.lstrip("/"))

    def _image(self, fm: dict[str, Any], content: str) -> Image | None:
        raw = fm.get("image") or fm.get("cover") or fm.get("featured_image") or fm.get("images")
        alt = one_line(_text(fm.get("image_alt") or fm.get("alt")))
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        if isinstance(raw, dict):  # {image: {path|src|url: ..., alt: ...}} (several themes)
            alt = alt or one_line(_text(raw.get("alt")))
            raw = raw.get("path") or raw.get("src") or raw.get("url") or raw.get("image")
        if isinstance(raw, str) and raw.strip():
            base = self.opts["base_url"]
            url = absolute_http_url(raw.strip(), base if base.endswith("/") else base + "/")
            if url:
                return Image(url, alt)
        images = _content_images(content)
        return images[0] if images else None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes", "1"))


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)


def _terms(value: Any) -> tuple[str, ...]:
    """A list, or Jekyll's space- or comma-separated string."""
    if isinstance(value, str):
        items = re.split(r"\s*,\s*", value) if "," in value else value.split()
    elif isinstance(value, list):
        items = [_text(v) for v in value]
    else:
        return ()
    return _unique(t for t in (one_line(i) for i in items) if t)


def _authors(fm: dict[str, Any]) -> str:
    value = fm.get("authors") or fm.get("author")
    values = value if isinstance(value, list) else [value]
    names = []
    for v in values:
        if isinstance(v, dict):
            v = v.get("name") or v.get("display_name")
        name = one_line(_text(v))
        if name:
            names.append(name)
    return ", ".join(dict.fromkeys(names))


def _first_heading(body: str) -> str:
    """The text of a heading that opens the body (not one deeper down, nor a code comment)."""
    m = re.match(r"\s*#{1,2}[ \t]+(.+?)[ \t]*#*[ \t]*$", body, re.M)
    return one_line(m.group(1)) if m else ""


def _slugify(text: str) -> str:
    """Lower-case words joined by "-", keeping letters of every script."""
    text = re.sub(r"[^\w\s-]", "", text.strip().lower(), flags=re.UNICODE)
    return re.sub(r"[\s_-]+", "-", text).strip("-") or "post"
