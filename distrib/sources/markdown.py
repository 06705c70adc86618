"""The Markdown source: the Markdown files of a Hugo, Jekyll or Eleventy site, read by that generator's own rules.

Only what the site publishes is a post, at the address the site publishes it.  The
generator is the option ``generator`` ("hugo", "jekyll", "eleventy"), else detected from
the site's config file (``hugo.toml``/``config.toml``, ``_config.yml``,
``.eleventy.js``/``eleventy.config.js``) in ``path`` or the three folders above it; a folder
of none of these is read by the generic rules below.  Each generator's rules are cited
where they are applied (by the name of the generator's documentation page).

Front matter is YAML between ``---`` lines, TOML between ``+++`` lines or (Hugo) a JSON
object, and only when the file starts with it; the split happens at the first closing
line, so ``---`` later in the body (a rule, a fenced YAML example) is body.  A file whose
front matter does not parse is skipped and logged with its name.

A post without a usable date is never dated silently: it is skipped (one log line with
the count) unless ``undated = "first-seen"``, which dates it by when distrib first saw it
(``distrib posts --all`` marks those).

Fields read: title, dates, tags, categories, summary / description / excerpt (else the
part before ``<!--more-->``), image / cover / featured_image / images (relative paths
resolved against the post's URL), image_alt, author / authors, slug, url / permalink.
A date without a zone is in the generator's configured zone, else ``site.timezone``.

The generic rules (no generator): every ``.md``/``.markdown`` file below ``path`` except
``_index.md``, README files and folders starting with ``_`` or ``.`` (drafts, includes,
layouts, data); ``draft: true`` and ``published: false`` are skipped; the date is
``date``/``publishDate``/``pubDate``, else a ``YYYY-MM-DD-`` file-name prefix; the URL is
``base_url`` + ``permalink`` with ``{year} {month} {day} {slug} {section}`` filled in.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from urllib.parse import quote, urljoin
from zoneinfo import ZoneInfo

from ..adapters import Context, Source
from ..errors import ConfigError, SourceError
from ..model import Image, Post
from ..sanitize import absolute_http_url, clean_html, excerpt, html_to_text, one_line
from ..schema import Opt, choice, k_path, k_str, k_str_list, k_url
from .common import SUMMARY_CHARS, canonical_url, content_images, derive_title, unique_terms
from .dates import parse_date

log = logging.getLogger("distrib.sources")

SUFFIXES = (".md", ".markdown")
GENERATORS = ("hugo", "jekyll", "eleventy")
_DATE_PREFIX = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)$")
_MORE = re.compile(r"<!--\s*more\s*-->", re.I)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_PLACEHOLDERS = {"year", "month", "day", "slug", "section"}
DEFAULT_PERMALINK = "/{year}/{month}/{slug}/"


class Skip(Exception):
    """A file that is not a post, with the one-line reason (logged, counted)."""


def split_front_matter(text: str) -> tuple[dict[str, Any], str, str]:
    """(front matter, body, format) of a Markdown file; format is "yaml", "toml", "json" or "".

    Raise ValueError with a short reason when the front matter does not parse.
    """
    text = text.lstrip("\ufeff")
    lines = text.splitlines(keepends=True)
    if not lines:
        return {}, "", ""
    first = lines[0].rstrip("\r\n").rstrip()
    if first.startswith("{"):
        # Hugo, "Front matter formats": JSON front matter is an object at the very start.
        try:
            data, end = json.JSONDecoder().raw_decode(text)
        except ValueError as e:
            raise ValueError(f"JSON front matter does not parse: {e}") from None
        if not isinstance(data, dict):
            raise ValueError("the front matter is not a mapping of keys to values")
        return data, text[end:].lstrip("\r\n"), "json"
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
            raise ValueError(
                f"YAML front matter does not parse{where}: {getattr(e, 'problem', None) or e}"
            ) from None
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
    html: str = md.render(text)
    return html


# --- the site: which generator, its config --------------------------------------------

_HUGO_CONFIGS = ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json")
_HUGO_LEGACY = ("config.toml", "config.yaml", "config.yml", "config.json")
_JEKYLL_CONFIGS = ("_config.yml", "_config.yaml", "_config.toml")
_ELEVENTY_CONFIGS = (
    ".eleventy.js", ".eleventy.cjs", ".eleventy.mjs",
    "eleventy.config.js", "eleventy.config.cjs", "eleventy.config.mjs",
)  # fmt: skip


@dataclass
class Site:
    """Where the site is and what its config says (only the keys whose rules we apply)."""

    generator: str  # "hugo", "jekyll", "eleventy" or "" (generic)
    root: Path | None  # the folder of the config file
    config_file: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)


def _site_config_file(folder: Path) -> tuple[str, Path] | None:
    for names, gen in (
        (_HUGO_CONFIGS, "hugo"),
        (_JEKYLL_CONFIGS, "jekyll"),
        (_ELEVENTY_CONFIGS, "eleventy"),
    ):
        for name in names:
            if (folder / name).is_file():
                return gen, folder / name
    for name in _HUGO_LEGACY:  # Hugo's name before v0.110; only with Hugo's content folder
        if (folder / name).is_file() and (
            (folder / "content").is_dir() or (folder / "archetypes").is_dir()
        ):
            return "hugo", folder / name
    return None


def find_site(path: Path, generator: str = "") -> Site:
    """The site ``path`` belongs to: its config file in ``path`` or up to three folders above."""
    for folder in (path, *list(path.resolve().parents)[:3]):
        found = _site_config_file(folder)
        if found and (not generator or found[0] == generator):
            gen, file = found
            return Site(gen, folder, file, _read_site_config(file))
    return Site(generator, path if generator else None)


def _read_site_config(file: Path) -> dict[str, Any]:
    """The config as a mapping; a JavaScript config (Eleventy) or a broken file gives {}."""
    try:
        text = file.read_text(encoding="utf-8-sig")
        if file.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif file.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif file.suffix == ".json":
            data = json.loads(text)
        else:
            return {}
    except (OSError, ValueError) as e:
        log.warning(
            "could not read the site config %s (%s); using the generator's defaults", file, e
        )
        return {}
    except Exception as e:  # yaml.YAMLError
        log.warning(
            "could not read the site config %s (%s); using the generator's defaults",
            file,
            one_line(str(e))[:120],
        )
        return {}
    return data if isinstance(data, dict) else {}


def _lower_keys(value: Any) -> Any:
    """Hugo, "Front matter": keys are case-insensitive (Hugo lower-cases them)."""
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    return value


def _go_bool(value: Any) -> bool | None:
    """A boolean as Hugo reads one (spf13/cast ToBool: strconv.ParseBool's spellings)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        text = value.strip()
        if text in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if text in ("0", "f", "F", "FALSE", "false", "False"):
            return False
    return None


def _ruby_true(value: Any) -> bool:
    """Jekyll/Eleventy read YAML: ``draft: true`` is true; accept the string too (safer to skip)."""
    return value is True or (
        isinstance(value, str) and value.strip().lower() in ("true", "yes", "1")
    )


def _ruby_false(value: Any) -> bool:
    return value is False or (
        isinstance(value, str) and value.strip().lower() in ("false", "no", "0")
    )


# --- slugs as each generator makes them -----------------------------------------------


def hugo_sanitize(text: str, lower: bool = True) -> str:
    """Hugo's path sanitiser (helpers.PathSpec.MakePathSanitized / UnicodeSanitize):
    letters, digits, marks and ``. / \\ _ - # + ~`` are kept, a run of spaces becomes
    one ``-``, other characters are dropped; lower-cased unless disablePathToLower."""
    out: list[str] = []
    hyphen = False
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        allowed = ch in "./\\_#+~-" or cat[0] in ("L", "N", "M")
        allowed = allowed or (
            ch == "%" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 1 : i + 3]) is not None
        )
        if allowed:
            if hyphen:
                out.append("-")
                hyphen = False
            out.append(ch)
        elif out and ch.isspace():
            hyphen = True
    result = "".join(out)
    return result.lower() if lower else result


def jekyll_slugify(text: str, mode: str = "default", cased: bool = False) -> str:
    """Jekyll's ``Utils.slugify``: "default" replaces every run of non-alphanumerics with
    ``-``; "pretty" keeps ``._~!$&'()+,;=@`` too; ``-`` is trimmed; lower-cased unless cased."""
    if mode == "raw":
        slug = re.sub(r"\s+", "-", text)
    elif mode == "pretty":
        slug = re.sub(r"[^\w._~!$&'()+,;=@]+", "-", text)
    else:
        slug = re.sub(r"[\W_]+", "-", text)
    slug = slug.strip("-")
    return slug if cased else slug.lower()


def eleventy_slugify(text: str) -> str:
    """Eleventy's ``slugify`` filter (@sindresorhus/slugify): accents dropped, ``&`` is "and",
    apostrophes removed, every other run of non-alphanumerics one ``-``, lower case."""
    text = text.replace("&", " and ").replace("'", "").replace("\u2019", "")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _generic_slug(text: str) -> str:
    """Lower-case words joined by "-", keeping letters of every script (no generator known)."""
    text = re.sub(r"[^\w\s-]", "", text.strip().lower(), flags=re.UNICODE)
    return re.sub(r"[\s_-]+", "-", text).strip("-") or "post"


def _url_path(path: str) -> str:
    """A URL path with the characters a URL cannot hold percent-encoded (what the generators write)."""
    return quote(path, safe="/!$&'()*+,;=:@-._~%")


# --- Jekyll permalinks (Jekyll docs, "Permalinks") -------------------------------------

#: Jekyll docs, "Permalinks" > "Built-in formats".
JEKYLL_STYLES = {
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "weekdate": "/:categories/:year/W:week/:short_day/:title:output_ext",
    "none": "/:categories/:title:output_ext",
}
_JEKYLL_VAR = re.compile(r":([a-z_]+)")


def jekyll_expand(template: str, values: dict[str, str]) -> str:
    """Jekyll's ``URL#generate_url_from_drop``: each ``:name`` is replaced by its escaped
    value; an unknown one is an error (Jekyll stops the build); ``/``s are squeezed."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        for key in (name, name[:-1] if name.endswith("_") else name):
            if key in values:
                return _url_path(values[key]) + ("_" if key != name else "")
        raise ValueError(f"the permalink {template!r} names :{name}, which Jekyll does not define")

    url = _JEKYLL_VAR.sub(one, template)
    url = re.sub(r"/{2,}", "/", "/" + url)
    return url


def jekyll_values(
    when: datetime | None,
    title: str,
    slug: str,
    categories: list[str],
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The placeholders of a Jekyll post (Jekyll docs, "Permalinks" > "Placeholders")."""
    values = {
        "title": title,
        "slug": slug,
        "categories": "/".join(dict.fromkeys(c.lower() for c in categories)),
        "slugified_categories": "/".join(dict.fromkeys(jekyll_slugify(c) for c in categories)),
        "output_ext": ".html",
    }
    if when is not None:
        values |= {
            "year": when.strftime("%Y"), "short_year": when.strftime("%y"),
            "month": when.strftime("%m"), "i_month": str(when.month),
            "short_month": when.strftime("%b"), "long_month": when.strftime("%B"),
            "day": when.strftime("%d"), "i_day": str(when.day), "y_day": when.strftime("%j"),
            "w_year": str(when.isocalendar()[0]), "week": f"{when.isocalendar()[1]:02d}",
            "w_day": str(when.isoweekday()), "short_day": when.strftime("%a"), "long_day": when.strftime("%A"),
            "hour": when.strftime("%H"), "minute": when.strftime("%M"), "second": when.strftime("%S"),
        }  # fmt: skip
    return values | (extra or {})


# --- Hugo permalinks (Hugo docs, "Permalinks" > "Tokens") -------------------------------

_HUGO_TOKEN = re.compile(
    r":(year|monthname|month|day|weekdayname|weekday|yearday|sections|section|title|slugorfilename|slug|filename)\b"
)


def hugo_expand(pattern: str, values: dict[str, str]) -> str:
    return _HUGO_TOKEN.sub(lambda m: values.get(m.group(1), ""), pattern)


# --- Eleventy permalinks (Eleventy docs, "Permalinks") ----------------------------------

_LIQUID = re.compile(r"\{\{\s*(.+?)\s*\}\}")
_TEMPLATE_SIGNS = re.compile(r"\{\{|\{%|\$\{")


def eleventy_expand(template: str, fm: dict[str, Any], page: dict[str, str]) -> str:
    """``{{ title | slugify }}``, ``{{ page.fileSlug }}`` and their kin; anything else
    (tags, other filters) raises ValueError: distrib is not a template engine."""
    if "{%" in template or "${" in template:
        raise ValueError(
            f"the permalink {template!r} is a template distrib cannot expand; write the path itself"
        )

    def one(m: re.Match[str]) -> str:
        parts = [p.strip() for p in m.group(1).split("|")]
        name, filters = parts[0], parts[1:]
        if name.startswith("page."):
            value: Any = page.get(name[5:])
        elif re.fullmatch(r"[A-Za-z_][\w]*", name):
            value = fm.get(name)
        else:
            value = None
        if value is None or isinstance(value, (dict, list)):
            raise ValueError(
                f"the permalink {template!r} uses {name!r}, which distrib cannot fill in; write the path itself"
            )
        text = str(value)
        for f in filters:
            if f in ("slugify", "slug"):
                text = eleventy_slugify(text)
            elif f in ("lower", "downcase"):
                text = text.lower()
            elif f != "url":
                raise ValueError(
                    f"the permalink {template!r} uses the filter {f!r}, which distrib cannot apply; write the path itself"
                )
        return text

    return _LIQUID.sub(one, template)


class MarkdownSource(Source):
    """Posts from the Markdown files of a Hugo, Jekyll or Eleventy site (or a plain folder)."""

    options: ClassVar[dict[str, Opt]] = {
        "path": Opt(
            k_path,
            None,
            "the site's folder (or its content folder); searched recursively",
            required=True,
        ),
        "base_url": Opt(
            k_url,
            None,
            "the site's address the post URLs start with, such as 'https://example.org/'",
            required=True,
        ),
        "generator": Opt(
            choice(*GENERATORS),
            None,
            "the site generator whose rules apply: hugo, jekyll or eleventy (default: detected from the site's config file)",
        ),
        "permalink": Opt(
            k_str,
            None,
            "the URL path of a post: {year} {month} {day} {slug} {section} (default: the generator's own rules, "
            "else /{year}/{month}/{slug}/)",
        ),
        "undated": Opt(
            choice("skip", "first-seen"),
            "skip",
            "a post without a usable date: skip it, or date it by when distrib first saw it",
        ),
        "collections": Opt(
            k_str_list, (), "Jekyll: collections (besides _posts) whose documents are posts too"
        ),
    }

    def __init__(self, name: str, options: Any, ctx: Context):
        super().__init__(name, options, ctx)
        unknown = set(_PLACEHOLDER.findall(self.opts.get("permalink") or "")) - _PLACEHOLDERS
        if unknown:
            raise ConfigError(
                f"{self._where}.permalink: unknown placeholder {{{sorted(unknown)[0]}}}; use {{year}} {{month}} {{day}} {{slug}} {{section}}"
            )
        self.site = Site("", None)
        self._tz: tzinfo = UTC
        self._cascades: dict[Path, Any] = {}
        self._indexes: dict[Path, bool] = {}

    @property
    def _where(self) -> str:
        return getattr(self.opts, "where", "") or f"sources ({self.name})"

    @property
    def _zone(self) -> tzinfo:
        return self._tz

    def _site_zone(self) -> tzinfo:
        # Hugo "Configure Hugo" > timeZone; Jekyll "Configuration" > timezone.
        names = [
            self.site.config.get("timezone"),
            self.site.config.get("timeZone"),
            self.ctx.settings.site.timezone,
        ]
        for zone in names:
            if isinstance(zone, str) and zone.strip():
                try:
                    return ZoneInfo(zone.strip())
                except Exception:
                    continue
        return UTC

    def fetch(self) -> list[Post]:
        root = Path(self.opts["path"])
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise SourceError(self.name, f"the Markdown folder {root} {what}; check the path")
        self.site = find_site(root, self.opts.get("generator") or "")
        if self.site.generator == "hugo":
            self.site.config = _lower_keys(self.site.config)
        self._tz = self._site_zone()
        self._cascades, self._indexes = {}, {}
        posts: list[Post] = []
        broken: list[str] = []
        undated: list[str] = []
        for file, base in self._files(root):
            rel = file.relative_to(root)
            try:
                post = self._post(file, base)
            except Skip as why:
                log.debug("source %r: %s is not a post (%s)", self.name, rel, why)
                continue
            except _Undated:
                undated.append(str(rel))
                continue
            except ValueError as e:
                broken.append(f"{rel}: {e}")
                log.warning("source %r: skipped %s", self.name, broken[-1])
                continue
            posts.append(post)
        if undated:
            more = f" and {len(undated) - 1} more" if len(undated) > 1 else ""
            log.warning(
                "source %r: skipped %d post%s without a date (%s%s); give them a date, or set "
                'undated = "first-seen" to date them by when distrib first sees them',
                self.name, len(undated), "" if len(undated) == 1 else "s", undated[0], more,
            )  # fmt: skip
        if broken and not posts:
            # Nothing usable at all: one error line rather than silently sending nothing.
            more = f" (and {len(broken) - 1} more files)" if len(broken) > 1 else ""
            raise SourceError(self.name, f"{broken[0]}{more}; fix the front matter")
        return posts

    # --- which files ------------------------------------------------------------------

    def _files(self, root: Path) -> list[tuple[Path, Path]]:
        """(file, the folder its URL path is relative to) for every candidate file."""
        gen = self.site.generator
        if gen == "hugo":
            return self._hugo_files(root)
        if gen == "jekyll":
            return self._jekyll_files(root)
        if gen == "eleventy":
            return self._eleventy_files(root)
        return self._generic_files(root)

    def _hugo_files(self, root: Path) -> list[tuple[Path, Path]]:
        """Hugo, "Content organization": pages are the files of the content folder only."""
        base = self._hugo_content_dir(root)
        scan = (
            base if root.resolve() == (self.site.root or root).resolve() and base != root else root
        )
        return [(f, base) for f in _markdown_files(scan) if not _hidden(f.relative_to(scan))]

    def _jekyll_files(self, root: Path) -> list[tuple[Path, Path]]:
        """Jekyll: the posts and output collections' documents, relative to the site root."""
        base = self.site.root or root
        return [(f, base) for f in _markdown_files(root) if self._jekyll_kind(f.relative_to(base))]

    def _eleventy_files(self, root: Path) -> list[tuple[Path, Path]]:
        """Eleventy, "Ignore template files": node_modules, the output folder, and the
        includes, layouts and data folders are never templates."""
        skip = {
            "node_modules",
            "_site",
            "_includes",
            "_layouts",
            "_data",
        } | self._eleventyignore(root)
        return [
            (f, root)
            for f in _markdown_files(root)
            if not (_hidden(f.relative_to(root)) or skip & set(f.relative_to(root).parts[:-1]))
        ]

    @staticmethod
    def _generic_files(root: Path) -> list[tuple[Path, Path]]:
        """No generator: every Markdown file but drafts, includes, layouts, data, hidden
        folders, node_modules, and the README, LICENSE and CHANGELOG at the top."""
        out = []
        for f in _markdown_files(root):
            rel = f.relative_to(root)
            hidden = [p for p in rel.parts[:-1] if p.startswith(("_", ".")) and p != "_posts"]
            if hidden or "node_modules" in rel.parts:
                continue  # drafts, includes, layouts, data, hidden folders
            if f.name.startswith(".") or (
                len(rel.parts) == 1 and f.stem.lower() in ("readme", "license", "changelog")
            ):
                continue
            out.append((f, root))
        return out

    def _hugo_content_dir(self, root: Path) -> Path:
        site_root = self.site.root
        if site_root is not None:
            cdir = site_root / str(self.site.config.get("contentdir") or "content")
            try:
                root.resolve().relative_to(cdir.resolve())
                return cdir
            except ValueError:
                pass
            if root.resolve() == site_root.resolve() and cdir.is_dir():
                return cdir
        if (root / "content").is_dir():
            return root / "content"
        return root

    def _jekyll_kind(self, rel: PurePosixPath | Path) -> str:
        """ "post", "collection" or "" (not a post) for a file relative to the site root.

        Jekyll, "Posts" and "Directory structure": posts live in a ``_posts`` folder (at the
        root or below ordinary folders, which become categories); other folders starting
        with ``_`` or ``.`` (``_drafts``, ``_includes``, ``_layouts``...) are not read as
        pages, nor are the ``exclude`` entries (node_modules and vendor by default)."""
        parts = rel.parts[:-1]
        excluded = {"node_modules", "vendor"} | {
            str(x).strip("/") for x in self.site.config.get("exclude") or []
        }
        if parts and parts[0] in excluded:
            return ""
        parts = self._jekyll_inner(parts)
        collections = {f"_{c}" for c in self.opts.get("collections") or ()}
        for i, part in enumerate(parts):
            if part == "_posts":
                return "post" if not any(p.startswith(("_", ".")) for p in parts[:i]) else ""
            if i == 0 and part in collections:
                return "collection"
            if part.startswith(("_", ".", "#", "~")):
                return ""
        return ""

    def _jekyll_inner(self, parts: tuple[str, ...]) -> tuple[str, ...]:
        """The folders below ``collections_dir`` ("Collections"), where _posts and the
        collections live when it is set."""
        cdir = tuple(
            p
            for p in str(self.site.config.get("collections_dir") or "").split("/")
            if p and p != "."
        )
        if cdir and cdir[0].startswith(("_", ".")):
            return parts  # Jekyll reads nothing from such a folder (tried with Jekyll 4.3)
        return parts[len(cdir) :] if cdir and parts[: len(cdir)] == cdir else parts

    @staticmethod
    def _eleventyignore(root: Path) -> set[str]:
        try:
            lines = (root / ".eleventyignore").read_text(encoding="utf-8").splitlines()
        except OSError:
            return set()
        return {
            line.strip().strip("/").removeprefix("./")
            for line in lines
            if line.strip() and not line.startswith("#")
        }

    # --- one file -----------------------------------------------------------------------

    def _post(self, file: Path, base: Path) -> Post:
        """The file as a Post by its generator's rules.

        Skip when it is not a post (or not yet), _Undated when it has no date and undated
        posts are skipped, ValueError (with the reason) when it cannot be read."""
        if file.name.startswith("_index."):
            raise Skip("a section's list page")  # Hugo, "Content organization" > _index.md
        fm, body = self._front_matter(file)
        if self.site.generator == "hugo":
            fm = self._hugo_cascade(file, base) | _lower_keys(fm)
        meta = self._meta(fm, file.relative_to(base), file)
        if meta.published is not None and meta.published > self.ctx.now:
            raise Skip("scheduled for later")
        if meta.published is None and self.opts.get("undated") != "first-seen":
            raise _Undated()
        url = meta.url
        content = clean_html(render_markdown(body), url)
        return Post(
            key=canonical_url(url),
            url=url,
            title=_title(fm, body, content),
            source=self.name,
            summary=_summary(fm, body, content, url),
            content=content,
            author=_authors(fm),
            published=meta.published,
            updated=meta.updated if meta.updated != meta.published else None,
            tags=_terms(fm.get("tags") or fm.get("keywords")),
            categories=_categories(fm, meta),
            image=self._image(fm, content, url),
        )

    def _front_matter(self, file: Path) -> tuple[dict[str, Any], str]:
        """(front matter, body) of the file; ValueError when it cannot be read."""
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8 text") from None
        except OSError as e:
            raise ValueError(e.strerror or str(e)) from None
        fm, body, fmt = split_front_matter(text)
        if fmt == "json" and self.site.generator not in ("hugo", ""):
            return {}, text  # only Hugo reads JSON front matter
        return fm, body

    def _meta(self, fm: dict[str, Any], rel: Path, file: Path) -> _Meta:
        """The address, dates and categories by the site generator's rules."""
        gen = self.site.generator
        if gen == "hugo":
            return self._hugo(fm, rel, file)
        if gen == "jekyll":
            return self._jekyll(fm, rel)
        if gen == "eleventy":
            return self._eleventy(fm, rel, file)
        return self._generic(fm, rel)

    # --- Hugo -------------------------------------------------------------------------

    def _hugo(self, fm: dict[str, Any], rel: Path, file: Path) -> _Meta:
        """Hugo's rules ("Front matter", "Page bundles", "Build options", "URL management")."""
        # Draft: "draft"; Hugo also reads "published" as its opposite (a boolean or a
        # boolean written as a string, spf13/cast ToBool).
        published_flag = (
            _go_bool(fm.get("published"))
            if not isinstance(fm.get("published"), (date, datetime))
            else None
        )
        if (_go_bool(fm.get("draft")) or published_flag is False) and not self._hugo_flag(
            "builddrafts"
        ):
            raise Skip("a draft")
        stem, lang = self._hugo_stem(rel)
        parts = list(rel.parts[:-1])
        bundle = stem == "index"
        self._hugo_skip_kept_out(fm, file, len(parts), bundle)
        when_date, when_pub, updated = self._hugo_dates(fm, file)
        filename = parts[-1] if bundle and parts else stem
        slug = self._hugo_slug(fm, filename)
        dir_parts = parts[:-1] if bundle else parts
        section = dir_parts[0] if dir_parts else ""
        lower = not _go_bool(self.site.config.get("disablepathtolower"))
        explicit = fm.get("url")
        if isinstance(explicit, str) and explicit.strip():
            return _Meta(self._hugo_url(explicit.strip(), lang), _utc(when_pub), _utc(updated))
        if self.opts.get("permalink"):
            url = self._pattern_url(when_pub, hugo_sanitize(slug or filename, lower), section)
            return _Meta(url, _utc(when_pub), _utc(updated))
        path = self._hugo_path(fm, when_date, dir_parts, slug, filename, lower)
        if self._hugo_flag("uglyurls") and path.endswith("/") and path != "/":
            path = path[:-1] + ".html"  # "URL management" > ugly URLs
        return _Meta(
            self._join(_url_path(self._hugo_lang_prefix(lang) + path)),
            _utc(when_pub),
            _utc(updated),
        )

    def _hugo_dates(
        self, fm: dict[str, Any], file: Path
    ) -> tuple[datetime | None, datetime | None, datetime | None]:
        """(date, publish date, last modified); Skip for an expired page."""
        # "Front matter" > dates: publishDate (aliases pubDate, published) first, else
        # date; expiryDate (alias unpublishdate); lastmod (alias modified).
        when_date = self._hugo_date(fm, file, "date")
        when_pub = self._hugo_date(fm, file, "publishdate") or when_date
        when_date = when_date or when_pub
        expiry = self._hugo_date(fm, file, "expirydate")
        if expiry is not None and expiry <= self.ctx.now and not self._hugo_flag("buildexpired"):
            raise Skip("expired")  # buildExpired is false by default
        return when_date, when_pub, self._hugo_date(fm, file, "lastmod")

    def _hugo_slug(self, fm: dict[str, Any], filename: str) -> str:
        slug = _text(fm.get("slug")).strip()
        if not slug and self._hugo_filename_dates():
            pm = _DATE_PREFIX.match(filename)
            if pm:
                slug = pm.group(4)  # ":filename": the rest of the name is the slug
        return slug

    def _hugo_stem(self, rel: Path) -> tuple[str, str]:
        """The file name without its extension and language ("post.fr.md"), and the language."""
        name = rel.name
        stem = name[: -len(rel.suffix)] if rel.suffix else name
        m = re.fullmatch(r"(.+)\.([A-Za-z]{2,3}(?:-[A-Za-z0-9]+)?)", stem)
        if m and m.group(2).lower() in self._hugo_languages():
            return m.group(1), m.group(2).lower()
        return stem, ""

    def _hugo_skip_kept_out(self, fm: dict[str, Any], file: Path, depth: int, bundle: bool) -> None:
        """Raise Skip for a bundle's resource, a headless bundle, a page its build options keep out."""
        # "Page bundles": a folder with an index.md is a leaf bundle; the other Markdown
        # files in it (and below it) are its resources, not pages.
        folder = file.parent
        for level in range(depth):
            if not (level == 0 and bundle) and self._has_index(folder):
                raise Skip("a resource of a leaf bundle, not a page")
            folder = folder.parent
        if bundle and _go_bool(fm.get("headless")):
            raise Skip("a headless bundle")  # "Page bundles" > headless bundle
        build = fm.get("build") if isinstance(fm.get("build"), dict) else fm.get("_build")
        if isinstance(build, dict):
            # "Build options": render/list "never" (or false) keep the page out.
            render, listed = build.get("render"), build.get("list")
            if render in ("never", False, "false") or listed in ("never", False, "false"):
                raise Skip("build options keep it out")

    def _hugo_path(
        self,
        fm: dict[str, Any],
        when_date: datetime | None,
        dir_parts: list[str],
        slug: str,
        filename: str,
        lower: bool,
    ) -> str:
        """The page's path: its section's permalink pattern, else its folders and slug."""
        section = dir_parts[0] if dir_parts else ""
        pattern = self._hugo_permalink(section)
        if not pattern:
            return hugo_sanitize("/" + "/".join([*dir_parts, slug or filename]) + "/", lower)
        local = when_date or datetime(1, 1, 1, tzinfo=UTC)  # Go's zero time for an undated page
        title = _text(fm.get("title"))
        values = {
            "year": str(local.year), "month": f"{local.month:02d}", "monthname": local.strftime("%B"),
            "day": f"{local.day:02d}", "weekday": str(local.isoweekday() % 7), "weekdayname": local.strftime("%A"),
            "yearday": str(local.timetuple().tm_yday), "section": section, "sections": "/".join(dir_parts),
            "title": hugo_sanitize(title), "slug": slug or hugo_sanitize(title), "filename": filename,
            "slugorfilename": slug or filename,
        }  # fmt: skip
        return hugo_sanitize(hugo_expand(pattern, values), lower)

    def _has_index(self, folder: Path) -> bool:
        if folder not in self._indexes:
            self._indexes[folder] = _has_index(folder)
        return self._indexes[folder]

    def _hugo_flag(self, key: str) -> bool:
        return bool(_go_bool(self.site.config.get(key)))

    def _hugo_cascade(self, file: Path, base: Path) -> dict[str, Any]:
        """ "Front matter" > cascade: what the site config and the ``_index.md`` of each
        section above the page hand down (the nearer wins; the page's own keys win over
        all).  A cascade entry with a ``_target`` is left out (it aims at some pages only)."""
        merged: dict[str, Any] = {}
        chain = [self.site.config.get("cascade")]
        folder = base
        for part in file.relative_to(base).parts[:-1]:
            chain.append(self._hugo_section_cascade(folder))
            folder = folder / part
        chain.append(self._hugo_section_cascade(folder))  # the section the page is in
        for value in chain:
            entries = value if isinstance(value, list) else [value]
            for entry in entries:
                if isinstance(entry, dict) and "_target" not in entry:
                    merged |= _lower_keys(entry)
        return merged

    def _hugo_section_cascade(self, folder: Path) -> Any:
        cache = self._cascades
        if folder not in cache:
            found: Any = None
            for index in sorted(folder.glob("_index.*")):
                if index.suffix.lower() in SUFFIXES:
                    try:
                        fm, _, _ = split_front_matter(index.read_text(encoding="utf-8-sig"))
                    except (OSError, ValueError):
                        continue
                    found = _lower_keys(fm).get("cascade")
                    break
            cache[folder] = found
        return cache[folder]

    def _hugo_languages(self) -> set[str]:
        cfg = self.site.config
        langs = {str(cfg.get("defaultcontentlanguage") or "en").lower()}
        if isinstance(cfg.get("languages"), dict):
            langs |= {str(k).lower() for k in cfg["languages"]}
        return langs

    def _hugo_lang_prefix(self, lang: str) -> str:
        default = str(self.site.config.get("defaultcontentlanguage") or "en").lower()
        if lang and lang != default and len(self._hugo_languages()) > 1:
            return "/" + lang
        return ""

    def _hugo_frontmatter_config(self) -> dict[str, list[str]]:
        cfg = self.site.config.get("frontmatter")
        out = {
            "date": ["date", "publishdate", "pubdate", "published", "lastmod", "modified"],
            "publishdate": ["publishdate", "pubdate", "published"],
            "expirydate": ["expirydate", "unpublishdate"],
            "lastmod": ["lastmod", "modified"],
        }
        if isinstance(cfg, dict):
            for key, value in cfg.items():
                if key in out and isinstance(value, list):
                    chain: list[str] = []
                    for item in value:
                        item = str(item).lower()
                        chain += out[key] if item == ":default" else [item]
                    out[key] = chain
        return out

    def _hugo_filename_dates(self) -> bool:
        return any(":filename" in chain for chain in self._hugo_frontmatter_config().values())

    def _hugo_date(self, fm: dict[str, Any], file: Path, which: str) -> datetime | None:
        for key in self._hugo_frontmatter_config()[which]:
            if key == ":filename":
                stem = file.parent.name if file.stem.split(".")[0] == "index" else file.stem
                pm = _DATE_PREFIX.match(stem)
                value: Any = date(int(pm[1]), int(pm[2]), int(pm[3])) if pm else None
            elif key in (":filemodtime", ":filemodtime"):
                value = datetime.fromtimestamp(file.stat().st_mtime, UTC)
            elif key.startswith(":"):
                value = None  # :git needs the repository's history
            else:
                value = fm.get(key)
            if value is not None and not isinstance(value, bool):
                when = self._when(value)
                if when is not None:
                    return when
        return None

    def _hugo_permalink(self, section: str) -> str:
        permalinks = self.site.config.get("permalinks")
        if not isinstance(permalinks, dict):
            return ""
        if isinstance(permalinks.get("page"), dict):  # Hugo >= 0.119: [permalinks.page]
            permalinks = permalinks["page"]
        pattern = permalinks.get(section.lower()) or permalinks.get(section)
        return pattern if isinstance(pattern, str) else ""

    def _hugo_url(self, url: str, lang: str) -> str:
        """ "Front matter" > url: the path relative to the base URL (its sub-path kept)."""
        if _HUGO_TOKEN.search(url) or _TEMPLATE_SIGNS.search(url):
            raise ValueError(
                f"url {url!r} is a template, which Hugo does not expand in front matter; write the path itself"
            )
        absolute = absolute_http_url(url) if url.startswith(("http://", "https://")) else None
        if absolute:
            return absolute
        return self._join(self._hugo_lang_prefix(lang) + "/" + url.lstrip("/"))

    # --- Jekyll -----------------------------------------------------------------------

    def _jekyll(self, fm: dict[str, Any], rel: Path) -> _Meta:
        """Jekyll's rules ("Posts", "Front Matter", "Permalinks")."""
        if _ruby_false(fm.get("published")) and not _ruby_true(self.site.config.get("unpublished")):
            raise Skip("published: false")  # "Configuration" > unpublished: false
        kind = self._jekyll_kind(rel)
        stem = rel.name[: -len(rel.suffix)]
        if kind == "collection":
            return self._jekyll_collection(fm, rel, stem)
        # "Posts": the file name is YEAR-MONTH-DAY-title.MARKUP; others are not read.
        m = re.match(r"^(\d{2,4})-(\d{1,2})-(\d{1,2})-(.*)$", stem)
        if not m:
            raise Skip("a file in _posts whose name does not start with YEAR-MONTH-DAY-")
        when = self._when(fm.get("date")) if fm.get("date") is not None else None
        if when is None:
            try:
                when = self._when(date(int(m[1]), int(m[2]), int(m[3])))
            except ValueError:
                raise ValueError("the date in the file name is not a date") from None
        if (
            when is not None
            and when > self.ctx.now
            and not _ruby_true(self.site.config.get("future"))
        ):
            raise Skip("dated in the future")  # "Configuration" > future: false
        parts = list(rel.parts[:-1])
        inner = list(self._jekyll_inner(rel.parts[:-1]))  # collections_dir is no category
        folder_categories = inner[: inner.index("_posts")]
        categories = (
            folder_categories
            + _jekyll_terms(fm.get("categories"))
            + _jekyll_terms(fm.get("category"), split=False)
        )
        slug_src = _text(fm.get("slug")).strip() or m.group(4)
        values = jekyll_values(
            when, jekyll_slugify(slug_src, "pretty", cased=True), jekyll_slugify(slug_src), categories,
            {"name": jekyll_slugify(m.group(4)), "path": _url_path("/".join(parts + [rel.name])), "collection": "posts"},
        )  # fmt: skip
        explicit = fm.get("permalink")
        if isinstance(explicit, str) and explicit.strip():
            template = explicit.strip()
        elif self.opts.get("permalink"):
            return _Meta(
                self._pattern_url(when, values["slug"], ""),
                _utc(when),
                self._updated(fm),
                tuple(categories),
            )
        else:
            template = self._jekyll_site_permalink()
        return self._jekyll_permalink(template, values, when, fm, categories)

    def _jekyll_permalink(
        self,
        template: str,
        values: dict[str, str],
        when: datetime | None,
        fm: dict[str, Any],
        categories: list[str],
    ) -> _Meta:
        """A post's or collection document's place from its permalink template, which
        Jekyll fills from ``values`` and never runs as Liquid."""
        if _TEMPLATE_SIGNS.search(template):
            raise ValueError(
                f"permalink {template!r} is a Liquid template, which Jekyll does not expand in a permalink"
            )
        return _Meta(
            self._join(jekyll_expand(template, values)),
            _utc(when),
            self._updated(fm),
            tuple(categories),
        )

    def _jekyll_site_permalink(self) -> str:
        configured = self.site.config.get("permalink")
        collections = self.site.config.get("collections")
        if isinstance(collections, dict) and isinstance(collections.get("posts"), dict):
            configured = collections["posts"].get("permalink") or configured
        if not isinstance(configured, str) or not configured.strip():
            configured = "date"  # "Permalinks": the default style is date
        return JEKYLL_STYLES.get(configured.strip(), configured.strip())

    def _jekyll_collection(self, fm: dict[str, Any], rel: Path, stem: str) -> _Meta:
        """ "Collections": a collection's documents are pages only with ``output: true``;
        their permalink is the collection's, by default ``/:collection/:path:output_ext``."""
        label = self._jekyll_inner(rel.parts[:-1])[0][1:]
        conf = (
            (self.site.config.get("collections") or {})
            if isinstance(self.site.config.get("collections"), dict)
            else {}
        )
        meta: dict[str, Any] = conf[label] if isinstance(conf.get(label), dict) else {}
        if not _ruby_true(meta.get("output")):
            raise Skip(f"the collection {label} is not output (set output: true in _config.yml)")
        when = self._when(fm.get("date")) if fm.get("date") is not None else None
        if (
            when is not None
            and when > self.ctx.now
            and not _ruby_true(self.site.config.get("future"))
        ):
            raise Skip("dated in the future")
        inner_parts = self._jekyll_inner(rel.parts[:-1])[1:]
        inner = "/".join([*inner_parts, rel.name])
        inner = inner[: -len(rel.suffix)]
        categories = _jekyll_terms(fm.get("categories")) + _jekyll_terms(
            fm.get("category"), split=False
        )
        slug_src = _text(fm.get("slug")).strip() or stem
        values = jekyll_values(
            when, jekyll_slugify(slug_src, "pretty", cased=True), jekyll_slugify(slug_src), categories,
            {"collection": label, "path": inner, "name": jekyll_slugify(stem)},
        )  # fmt: skip
        explicit = fm.get("permalink")
        template = explicit.strip() if isinstance(explicit, str) and explicit.strip() else None
        if template is None:
            configured = meta.get("permalink")
            template = (
                JEKYLL_STYLES.get(configured, configured)
                if isinstance(configured, str)
                else "/:collection/:path:output_ext"
            )
        return self._jekyll_permalink(template, values, when, fm, categories)

    # --- Eleventy ---------------------------------------------------------------------

    def _eleventy(self, fm: dict[str, Any], rel: Path, file: Path) -> _Meta:
        """Eleventy's rules ("Permalinks", "Collections", "Content dates")."""
        _eleventy_skip(fm)
        stem = rel.name[: -len(rel.suffix)]
        prefix = _DATE_PREFIX.match(stem)
        when = self._eleventy_date(fm.get("date"), file, prefix)
        url = self._eleventy_url(fm, list(rel.parts[:-1]), stem, prefix, when)
        return _Meta(url, _utc(when), self._updated(fm))

    def _eleventy_date(self, raw: Any, file: Path, prefix: re.Match[str] | None) -> datetime | None:
        """ "Content dates": the front matter's date (or "Last Modified", the file's time),
        else a YYYY-MM-DD in the file name.  "Created" and the git dates are not known."""
        when: datetime | None = None
        if isinstance(raw, str) and raw.strip() in ("Last Modified", "git Last Modified"):
            when = (
                datetime.fromtimestamp(file.stat().st_mtime, UTC)
                if raw.strip() == "Last Modified"
                else None
            )
        elif raw is not None and not (
            isinstance(raw, str) and raw.strip() in ("Created", "git Created")
        ):
            when = self._when(raw)
        if when is None and prefix:
            # "Content dates": a YYYY-MM-DD in the file name is the date.
            when = self._when(date(int(prefix[1]), int(prefix[2]), int(prefix[3])))
        return when

    def _eleventy_url(
        self,
        fm: dict[str, Any],
        parts: list[str],
        stem: str,
        prefix: re.Match[str] | None,
        when: datetime | None,
    ) -> str:
        """The front matter's permalink expanded, else our permalink option, else the
        input path as a folder."""
        permalink = fm.get("permalink")
        file_slug = (
            (prefix.group(4) if prefix else stem)
            if stem != "index"
            else (parts[-1] if parts else "")
        )
        if isinstance(permalink, str) and permalink.strip():
            path_stem = "/" + "/".join([*parts, stem])
            expanded = eleventy_expand(
                permalink.strip(), fm, {"fileSlug": file_slug, "filePathStem": path_stem}
            )
            path = "/" + expanded.lstrip("/")
            if path.endswith("/index.html"):
                path = path[: -len("index.html")]
            return self._join(_url_path(path))
        if self.opts.get("permalink"):
            return self._pattern_url(
                when, eleventy_slugify(file_slug) or "post", parts[0] if parts else ""
            )
        # "Permalinks" > default output: the input path without its extension, as a
        # folder; index, or a file named like its folder, is that folder.
        segs = parts if stem == "index" or (parts and stem == parts[-1]) else [*parts, stem]
        return self._join(_url_path("/" + "/".join(segs) + ("/" if segs else "")))

    # --- no generator -----------------------------------------------------------------

    def _generic(self, fm: dict[str, Any], rel: Path) -> _Meta:
        """The generic rules (see the module's doc string)."""
        if _ruby_true(fm.get("draft")) or _ruby_false(fm.get("published")):
            raise Skip("a draft")
        stem = rel.name[: -len(rel.suffix)]
        parts = list(rel.parts[:-1])
        if stem == "index" and parts:  # a page bundle: the folder is the post
            stem = parts.pop()
        prefix = _DATE_PREFIX.match(stem)
        name = prefix[4] if prefix else stem
        when = self._generic_date(fm, prefix)
        self._skip_expired(fm)
        published = _utc(when)
        url = self._generic_explicit_url(fm, name, when)
        if url:
            return _Meta(url, published, self._updated(fm))
        slug = _generic_slug(str(fm.get("slug") or name))
        section = parts[0] if parts else ""
        return _Meta(self._pattern_url(when, slug, section), published, self._updated(fm))

    def _generic_date(self, fm: dict[str, Any], prefix: re.Match[str] | None) -> datetime | None:
        """publishDate, date or pubDate, else a YYYY-MM-DD- prefix of the file name."""
        for key in ("publishDate", "publishdate", "date", "pubDate"):
            if fm.get(key) is not None:
                when = self._when(fm.get(key))
                if when is not None:
                    return when
        if prefix:
            return self._when(date(int(prefix[1]), int(prefix[2]), int(prefix[3])))
        return None

    def _skip_expired(self, fm: dict[str, Any]) -> None:
        """Raise Skip for a page whose expiryDate has passed."""
        for key in ("expiryDate", "expirydate"):
            expiry = self._when(fm.get(key)) if fm.get(key) is not None else None
            if expiry is not None and expiry <= self.ctx.now:
                raise Skip("expired")

    def _generic_explicit_url(
        self, fm: dict[str, Any], name: str, when: datetime | None
    ) -> str | None:
        """The front matter's url or permalink, its Liquid/Nunjucks or Jekyll ``:name``
        placeholders filled in, against base_url; None when there is none (or it is not
        an http(s) address)."""
        explicit = fm.get("url") or fm.get("permalink")
        if not (isinstance(explicit, str) and explicit.strip()):
            return None
        template = explicit.strip()
        if "{{" in template or "{%" in template:
            template = eleventy_expand(template, fm, {"fileSlug": name})
        elif _JEKYLL_VAR.search(template) and not template.startswith(("http://", "https://")):
            categories = _jekyll_terms(fm.get("categories")) + _jekyll_terms(
                fm.get("category"), split=False
            )
            slug_src = str(fm.get("slug") or name)
            values = jekyll_values(
                when,
                jekyll_slugify(slug_src, "pretty", cased=True),
                jekyll_slugify(slug_src),
                categories,
            )
            template = jekyll_expand(template, values)
        return absolute_http_url(template, self._base())

    # --- shared ---------------------------------------------------------------------------

    def _updated(self, fm: dict[str, Any]) -> datetime | None:
        for key in ("lastmod", "updated", "modified", "last_modified_at"):
            if fm.get(key) is not None:
                when = self._when(fm.get(key))
                if when is not None:
                    return _utc(when)
        return None

    def _base(self) -> str:
        base: str = self.opts["base_url"]
        return base if base.endswith("/") else base + "/"

    def _join(self, path: str) -> str:
        return urljoin(self._base(), path.lstrip("/"))

    def _pattern_url(self, when: datetime | None, slug: str, section: str) -> str:
        pattern = self.opts.get("permalink") or DEFAULT_PERMALINK
        needs_date = any(p in pattern for p in ("{year}", "{month}", "{day}"))
        if when is None and needs_date:
            pattern = "/{slug}/"
        local = when.astimezone(self._zone) if when else None
        values = {
            "year": f"{local.year:04d}" if local else "",
            "month": f"{local.month:02d}" if local else "",
            "day": f"{local.day:02d}" if local else "",
            "slug": quote(slug),
            "section": quote(section),
        }
        path = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), pattern)
        path = re.sub(r"/{2,}", "/", path)
        return self._join(path)

    def _when(self, value: Any) -> datetime | None:
        """A front-matter date, aware: its own offset when written, else the site's zone.

        YAML/TOML give datetime or date objects, or a string."""
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=self._zone)
        if isinstance(value, date):
            return datetime.combine(value, time(0, 0), tzinfo=self._zone)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            m = re.fullmatch(
                r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?\s*(Z|[+-]\d{2}:?\d{2})?",
                text,
            )
            if m:
                try:
                    naive = datetime.fromisoformat(
                        m.group(1)
                        + (
                            "T" + m.group(2).zfill(5 if len(m.group(2)) <= 5 else 8)
                            if m.group(2)
                            else ""
                        )
                    )
                except ValueError:
                    return None
                if m.group(3):
                    zone = m.group(3)
                    if zone != "Z" and ":" not in zone:
                        zone = zone[:3] + ":" + zone[3:]
                    return datetime.fromisoformat(
                        naive.isoformat() + ("+00:00" if zone == "Z" else zone)
                    )
                return naive.replace(tzinfo=self._zone)  # no zone written: the site's
            return parse_date(text)
        return None

    def _image(self, fm: dict[str, Any], content: str, url: str) -> Image | None:
        raw = fm.get("image") or fm.get("cover") or fm.get("featured_image") or fm.get("images")
        alt = one_line(_text(fm.get("image_alt") or fm.get("alt")))
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        if isinstance(raw, dict):  # {image: {path|src|url: ..., alt: ...}} (several themes)
            alt = alt or one_line(_text(raw.get("alt")))
            raw = raw.get("path") or raw.get("src") or raw.get("url") or raw.get("image")
        if isinstance(raw, str) and raw.strip():
            # A Hugo page resource is relative to its page; elsewhere to the site.
            image_url = absolute_http_url(
                raw.strip(), url if self.site.generator == "hugo" else self._base()
            )
            if image_url:
                return Image(image_url, alt)
        images = content_images(content)
        return images[0] if images else None


@dataclass(frozen=True)
class _Meta:
    url: str
    published: datetime | None
    updated: datetime | None = None
    categories: tuple[str, ...] | None = None


class _Undated(Exception):
    """A post without a usable date (skipped unless undated = "first-seen")."""


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _markdown_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _jekyll_terms(value: Any, split: bool = True) -> list[str]:
    """Jekyll, "Posts" > categories: a list, or a string of space-separated words."""
    if isinstance(value, str):
        return [w for w in (value.split() if split else [value.strip()]) if w]
    if isinstance(value, list):
        return [str(v) for v in value if v is not None and str(v).strip()]
    return []


def _has_index(folder: Path) -> bool:
    return (
        any(folder.glob("index.md"))
        or any(folder.glob("index.*.md"))
        or any(folder.glob("index.markdown"))
    )


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
    return unique_terms(t for t in (one_line(i) for i in items) if t)


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


def _eleventy_skip(fm: dict[str, Any]) -> None:
    """Raise Skip for a page Eleventy does not write or leaves out of collections, or a draft."""
    permalink = fm.get("permalink")
    if permalink is False or _ruby_false(permalink):
        raise Skip("permalink: false (not written)")
    if _ruby_true(fm.get("eleventyExcludeFromCollections")):
        raise Skip("eleventyExcludeFromCollections")
    if _ruby_true(fm.get("draft")):
        raise Skip("a draft")  # the "Drafts" recipe of the Eleventy docs


def _summary(fm: dict[str, Any], body: str, content: str, url: str) -> str:
    """The front matter's summary, description or excerpt, else the part before
    ``<!--more-->``, else the content's start."""
    summary_src = fm.get("summary") or fm.get("description") or fm.get("excerpt")
    if isinstance(summary_src, str) and summary_src.strip():
        return " ".join(html_to_text(render_markdown(summary_src)).split())
    more = _MORE.search(body)
    if more:
        return " ".join(
            html_to_text(clean_html(render_markdown(body[: more.start()]), url)).split()
        )
    return excerpt(html_to_text(content), SUMMARY_CHARS)


def _title(fm: dict[str, Any], body: str, content: str) -> str:
    """The front matter's title, else a heading opening the body, else the first words."""
    return (
        one_line(_text(fm.get("title")), markup=False)
        or _first_heading(body)
        or derive_title(html_to_text(content))
    )


def _categories(fm: dict[str, Any], meta: _Meta) -> tuple[str, ...]:
    """The categories the generator's rules gave, else the front matter's."""
    if meta.categories is not None:
        return unique_terms(meta.categories)
    return _terms(fm.get("categories") or fm.get("category"))


def _first_heading(body: str) -> str:
    """The text of a heading that opens the body (not one deeper down, nor a code comment)."""
    m = re.match(r"\s*#{1,2}[ \t]+(.+?)[ \t]*#*[ \t]*$", body, re.M)
    return one_line(m.group(1)) if m else ""
