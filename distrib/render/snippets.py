"""Share posts composed to fit each network: templates, hashtags, UTM links, facets.

A channel gives :func:`compose` its template variants (rich to short), its counter
(length.py) and its limit.  The composer takes the richest variant that fits; inside a
variant it first drops hashtags, then trims the summary at a word boundary with "…".
When no variant fits, the shortest one is tried with the title trimmed the same way.
A URL, a hashtag or a mention is never cut: the summary is cut only between
whitespace-separated tokens (or between ideographs for scripts written without
spaces), and tokens that are URLs, hashtags or mentions are kept whole or dropped whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import jinja2
import regex

from ..errors import DistribError, TemplateError
from ..model import Facet, Post, Snippet
from .entities import bluesky_facets
from .length import graphemes, iter_urls

if TYPE_CHECKING:
    from ..config import Settings

ELLIPSIS = "…"
#: A trimmed summary shorter than this many graphemes is not worth showing: the
#: composer moves on to the next (shorter) variant instead.
MIN_SUMMARY = 20
#: A title cut between graphemes (it has no word boundary to cut at) keeps at least this
#: many, or the post is reported as not fitting.
MIN_TITLE = 10

#: Variant suffixes, rich to short: NAME.j2, NAME.short.j2, NAME.title.j2.
VARIANT_SUFFIXES = ("", ".short", ".title")


class SnippetError(DistribError):
    """A post cannot be composed for a channel (too long for every variant)."""


# --- templates -----------------------------------------------------------------------


def share_env(settings: Settings | None) -> jinja2.Environment:
    """The template environment of share posts: the user's folder first, then ours.

    Share posts are plain text, never HTML, so nothing is escaped (an "&" in a title
    must stay "&", not become "&amp;").
    """
    from .templating import make_env

    return make_env(settings).overlay(autoescape=False)


def template_variants(env: jinja2.Environment, name: str) -> list[str]:
    """``share/NAME.j2`` and whichever of its shorter variants exist, rich to short."""
    from .templating import template_error

    out = []
    for suffix in VARIANT_SUFFIXES:
        candidate = f"share/{name}{suffix}.j2"
        try:
            env.get_template(candidate)
        except jinja2.TemplateNotFound as e:
            if not suffix:  # the main template must exist; its variants may not
                raise template_error(e, candidate) from None
            continue
        except jinja2.TemplateError as e:
            raise template_error(e, candidate) from None
        out.append(candidate)
    return out


def _render(env: jinja2.Environment, name: str, ctx: Mapping[str, Any]) -> str:
    try:
        text = env.get_template(name).render(**ctx)
    except TemplateError:
        raise
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError, KeyError) as e:
        from .templating import template_error

        raise template_error(e, name) from None
    return tidy(text)


def tidy(text: str) -> str:
    """Trailing spaces off every line, at most one blank line in a row, no blank ends."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip()


# --- hashtags ------------------------------------------------------------------------

_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")


def _has_case(c: str) -> bool:
    return c.upper() != c.lower() or not c.isalpha()


def clean_hashtag(tag: str) -> str | None:
    """A tag or category as a hashtag body: "machine learning" -> "MachineLearning".

    Spaces and punctuation go; a multi-word tag becomes CamelCase; a tag of digits only
    is not a hashtag on any network, so it gives None.
    """
    words: list[str] = _WORD.findall(tag)
    if not words:
        return None
    if len(words) == 1:
        body = words[0]
    else:
        # CamelCase shows where words meet only in scripts with case; in Arabic, Hebrew,
        # Persian, CJK... people join hashtag words with "_" (#أخبار_محلية), which every
        # network keeps inside the tag.
        body = words[0][:1].upper() + words[0][1:]
        for prev, word in zip(words, words[1:], strict=False):
            caseless = not _has_case(prev[-1]) or not _has_case(word[0])
            body += "_" + word if caseless else word[:1].upper() + word[1:]
    if body.isdigit():
        return None
    return body


def hashtags_for(post: Post, text: str = "") -> list[str]:
    """Hashtags (with '#') from the post's tags then categories, cleaned and deduplicated.

    One already in ``text`` (case-insensitively) is left out.
    """
    present = {m.casefold() for m in _HASHTAG_RE.findall(text)}
    seen: set[str] = set()
    out = []
    for raw in (*post.tags, *post.categories):
        body = clean_hashtag(raw)
        if body is None:
            continue
        folded = body.casefold()
        if folded in seen or folded in present:
            continue
        seen.add(folded)
        out.append("#" + body)
    return out


# --- links ---------------------------------------------------------------------------


def add_utm(url: str, source: str, medium: str, campaign: str) -> str:
    """``url`` with utm_source/utm_medium/utm_campaign appended to its query.

    Nothing else changes, byte for byte: the query is not parsed and re-encoded (that
    turned ``ref=a%20b`` into ``ref=a+b``, ``path=a%2Fb`` into ``path=a/b``, ``?flag``
    into ``flag=``).  A ``utm_*`` parameter the link already has keeps its own value;
    only the missing ones are appended.
    """
    base, hash_, fragment = url.partition("#")
    path, question, query = base.partition("?")
    names = {
        unquote(field.split("=", 1)[0]).strip().lower()
        for field in regex.split("[&;]", query)
        if field
    }
    added = "&".join(
        f"{key}={quote(value, safe='')}"
        for key, value in (
            ("utm_source", source),
            ("utm_medium", medium),
            ("utm_campaign", campaign),
        )
        if value and key not in names
    )
    if not added:
        return url
    if not question:
        query = added
    elif not query or query.endswith(("&", ";")):
        query += added
    else:
        query += "&" + added
    return f"{path}?{query}{hash_}{fragment}"


# --- Bluesky facets ------------------------------------------------------------------

# A hashtag already in the text, to leave out of the ones added (any network).
_HASHTAG_RE = regex.compile(r"(?<![^\s(\[])[#＃]((?:(?!\s)[\p{L}\p{M}\p{N}_])+)")


def facets_for(text: str) -> tuple[Facet, ...]:
    """The facets Bluesky's reference client detects in ``text``, in its order.

    ``@atproto/api`` ``RichText.detectFacetsWithoutResolution()``: links (with a scheme,
    or a bare domain whose top-level domain is real), hashtags, cashtags (kind
    ``"cashtag"``, value ``"$TICKER"``; a tag facet on Bluesky) and mentions (value: the
    handle, which the Bluesky channel resolves to a DID).  Offsets are UTF-8 bytes,
    ``byteStart`` inclusive, ``byteEnd`` exclusive
    (https://docs.bsky.app/docs/advanced-guides/post-richtext).
    """
    out = []
    for f in bluesky_facets(text):
        kind = "cashtag" if f.kind == "tag" and f.value.startswith("$") else f.kind
        out.append(Facet(f.byte_start, f.byte_end, kind, f.value))
    return tuple(out)


# --- composing -----------------------------------------------------------------------

_ATOMIC = regex.compile(r"^(?:[#＃@]|https?://)|^\S+\.\S+/")
_NO_SPACE_SCRIPT = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]"
)


def _pieces(summary: str) -> list[str]:
    """The summary as cut points: whitespace-separated tokens, ideographs one by one.

    Japanese, Chinese, Thai... are written without spaces; between two of their
    characters is a word boundary good enough for a summary, so long runs of them are
    split into graphemes.  A URL, hashtag or mention is always one piece.
    """
    out: list[str] = []
    for token in regex.findall(r"\S+\s*", summary):
        if _ATOMIC.search(token) or not _NO_SPACE_SCRIPT.search(token) or list(iter_urls(token)):
            out.append(token)
        else:
            out.extend(graphemes(token))
    return out


def _trimmed(pieces: list[str], n: int) -> str:
    text = "".join(pieces[:n]).rstrip()
    text = text.rstrip(",;:—–-·")
    return text + ELLIPSIS


def compose(
    post: Post,
    *,
    channel: str,
    template_names: list[str],
    env: jinja2.Environment,
    counter: Callable[[str], int],
    limit: int,
    hashtags: int,
    utm: Mapping[str, str] | None,
    link_url: str,
    extra_context: Mapping[str, Any] | None = None,
) -> Snippet:
    """The richest rendering of ``post`` that fits ``limit`` under ``counter``.

    For each variant, rich to short: the full summary with all hashtags (up to
    ``hashtags``), then with fewer, then none; then, if the variant shows the summary,
    the summary trimmed at a word boundary.  Raise :class:`SnippetError` when no variant
    fits even with its summary at the minimum.
    """
    if not template_names:
        raise TemplateError(
            f"channel {channel!r}: no share template; add templates/share/default.j2"
        )
    link = add_utm(link_url, **utm) if utm else link_url
    composer = _Composer(post, channel, env, counter, limit, link, extra_context or {})
    for name in template_names:
        plain = composer.render(name, composer.summary, [])
        snippet = composer.with_hashtags(name, plain, hashtags)
        if snippet is None:
            snippet = composer.with_trimmed_summary(name, plain)
        if snippet is not None:
            return snippet
    snippet = composer.with_trimmed_title(template_names[-1])
    if snippet is not None:
        return snippet
    raise SnippetError(
        f"post {post.key} cannot fit channel {channel} ({composer.shortest} > {limit}): "
        f"shorten the title or use a shorter template"
    )


class _Composer:
    """One post composed for one channel: the steps :func:`compose` tries in turn."""

    def __init__(
        self,
        post: Post,
        channel: str,
        env: jinja2.Environment,
        counter: Callable[[str], int],
        limit: int,
        link: str,
        extra_context: Mapping[str, Any],
    ):
        self.post = post
        self.channel = channel
        self.env = env
        self.counter = counter
        self.limit = limit
        self.link = link
        self.title = " ".join(post.title.split())
        self.summary = " ".join(post.summary.split())
        self.base: dict[str, Any] = {
            "post": post,
            "title": self.title,
            "link": link,
            "channel": channel,
        }
        self.base.update(extra_context)
        #: The shortest length rendered with the full summary, for the error message.
        self.shortest: int | None = None

    def render(
        self, name: str, summary_text: str, tags: list[str], title_text: str | None = None
    ) -> str:
        """The variant ``name`` with this summary, hashtags and title (default: the
        post's full title)."""
        title = self.title if title_text is None else title_text
        return _render(
            self.env, name, self.base | {"summary": summary_text, "hashtags": tags, "title": title}
        )

    def snippet(self, text: str, tags: list[str]) -> Snippet:
        """The composed text as the channel's snippet."""
        return _snippet(
            self.channel, self.post, text, self.link, self.counter(text), self.limit, tags
        )

    def with_hashtags(self, name: str, plain: str, hashtags: int) -> Snippet | None:
        """The variant with the full summary and as many hashtags as fit (up to
        ``hashtags``, maybe none); None when even ``plain`` (no hashtag) is too long."""
        tags = hashtags_for(self.post, plain)[:hashtags] if hashtags else []
        for n in range(len(tags), -1, -1):
            text = self.render(name, self.summary, tags[:n]) if n else plain
            length = self.counter(text)
            if length <= self.limit:
                return _snippet(
                    self.channel, self.post, text, self.link, length, self.limit, tags[:n]
                )
            self.shortest = length if self.shortest is None else min(self.shortest, length)
        return None

    def with_trimmed_summary(self, name: str, plain: str) -> Snippet | None:
        """The variant with its summary cut at a word boundary to fit; None when the
        variant does not show the summary, or too little of it would be left."""
        if not self.summary or self.render(name, "", []) == plain:
            return None  # this variant does not show the summary: nothing to trim
        pieces = _pieces(self.summary)
        best = self._longest_fit(name, pieces, cut_title=False)
        if best is None:
            return None
        cut = _trimmed(pieces, best)
        if len(graphemes(cut)) < min(MIN_SUMMARY, len(graphemes(self.summary))):
            return None
        return self.snippet(self.render(name, cut, []), [])

    def with_trimmed_title(self, name: str) -> Snippet | None:
        """The last resort: the variant's title cut to fit, at a word boundary, else
        between two graphemes; None when the variant does not show the title or too
        little of it would be left.

        A title longer than the network allows (150 CJK characters weigh 300 on X) is
        cut rather than the post never being shared; a title that is one long word, or
        only emoji, is cut between two graphemes (never inside a ZWJ sequence or a
        flag).  The link is never cut.
        """
        if self.render(name, "", [], "") == self.render(name, "", []):
            return None
        for pieces, least in (
            (_pieces(self.title), MIN_SUMMARY + 1),
            (graphemes(self.title), MIN_TITLE),
        ):
            if len(pieces) < 2:
                continue
            best = self._longest_fit(name, pieces, cut_title=True)
            if best is not None and len(graphemes(_trimmed(pieces, best))) > least:
                return self.snippet(self.render(name, "", [], _trimmed(pieces, best)), [])
        return None

    def _longest_fit(self, name: str, pieces: list[str], *, cut_title: bool) -> int | None:
        """The most pieces whose trimmed text, as the summary (or with ``cut_title``, as
        the title and no summary), fits; None when not even one does.

        A binary search: the length grows with the number of pieces.
        """
        lo, hi, best = 1, len(pieces) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.counter(self._render_cut(name, _trimmed(pieces, mid), cut_title)) <= self.limit:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return best

    def _render_cut(self, name: str, cut: str, cut_title: bool) -> str:
        """The variant with ``cut`` as its title (and no summary), or as its summary."""
        if cut_title:
            return self.render(name, "", [], cut)
        return self.render(name, cut, [])


def _snippet(
    channel: str, post: Post, text: str, link: str, length: int, limit: int, tags: Iterable[str]
) -> Snippet:
    return Snippet(
        channel=channel,
        post_key=post.key,
        text=text,
        link=link,
        length=length,
        limit=limit,
        hashtags=tuple(tags),
        image=post.image,
    )
