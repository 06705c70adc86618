"""One edition's email: Jinja2 -> MJML -> HTML, a text part, subject and preheader.

The MJML is compiled once per edition (ARCHITECTURE.md, promise 5); what differs per recipient
(address, unsubscribe link) is left as the placeholders of :mod:`distrib.model` and
substituted into the finished bytes by the message builder.

Size budget (promise 6): Gmail clips a message whose HTML is over ~102 KB
(https://support.google.com/mail/thread/9589618), hiding the footer with the
unsubscribe link.  The HTML as sent must stay under ``size_budget_kb``; when the posts
do not fit, the first ones are shown in full and the rest listed as compact title links.

mjml-python (MRML) specifics, measured: it does not inline ``mj-style inline`` (so the
templates put styles in MJML attributes and inline ``style``), it rejects a bare ``<`` in
text, copies an unknown ``mj-*`` tag verbatim, and raises a plain ValueError; each of
those becomes a :class:`TemplateError` naming the template.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import TemplateError
from ..model import Markers, Post, RenderedEdition
from ..sanitize import absolute_http_url, excerpt, html_to_text, one_line
from ..unsubscribe import public_base_url
from .templating import get_template, make_env, render, render_string
from .theme import Theme, reading_minutes, theme_for

if TYPE_CHECKING:
    from ..config import Settings
    from ..tracking import ClickTracker

DEFAULT_TEMPLATE = "digest"
SINGLE_TEMPLATE = "single"
#: Tags shown as chips under a post: more is noise (and bytes).
MAX_CHIPS = 4
#: The longest preheader kept: clients show 40-140 characters of it.
MAX_PREHEADER = 200
#: Zero-width non-joiners and no-break spaces after the preheader (see render_edition).
PREVIEW_FILLER = "\u200c\u00a0" * 40
#: A single-post edition gets a longer excerpt than a digest entry.
SINGLE_EXCERPT_FACTOR = 3


@dataclass(frozen=True)
class PostView:
    """A post as the templates see it: plain text fields, checked URLs, localised date."""

    key: str
    url: str
    title: str
    author: str
    date: str
    published: datetime | None
    minutes: int
    reading_time: str
    excerpt: str
    long_excerpt: str
    image_url: str | None
    image_alt: str
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    source: str

    #: "ltr" or "rtl": the post's own direction (its title's first strong character),
    #: whatever the site's; an English post in an Arabic edition reads left to right.
    dir: str = "ltr"

    @property
    def meta_parts(self) -> tuple[str, ...]:
        return tuple(p for p in (self.author, self.date, self.reading_time) if p)

    @property
    def meta(self) -> str:
        """'Author · 28 Nov 2026 · 3 min read', the parts that exist."""
        return " · ".join(self.meta_parts)


def text_direction_of(text: str, default: str = "ltr") -> str:
    """The direction of ``text`` by its first strong character (as dir="auto" does)."""
    import unicodedata as ud

    for ch in text:
        kind = ud.bidirectional(ch)
        if kind == "L":
            return "ltr"
        if kind in ("R", "AL"):
            return "rtl"
    return default


#: Reading time is shown only for a text of at least this many minutes: below it the
#: "text" is most often a feed's summary (the full post was never given), and
#: "1 min read" on every summary-only post is noise, not information.
MIN_READING_MINUTES = 2


def _texts(post: Post) -> tuple[str, str, int]:
    """The post's body as text, its summary on one line, and the body's reading minutes."""
    body = html_to_text(post.content)
    summary = " ".join((post.summary or "").split())
    # Only the full text has a reading time: not a summary, nor a body that is one.
    full_text = body if body and " ".join(body.split()) != summary else ""
    return body, summary, reading_minutes(full_text) if full_text else 0


def _terms(post: Post) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The post's categories and its tags, one line each, empty ones dropped."""
    categories = tuple(c for c in (one_line(c, markup=False) for c in post.categories) if c)
    # The category shown as the post's label (or its group's heading) is not a chip too.
    label = categories[0].casefold() if categories else None
    tags = tuple(
        t for t in (one_line(t, markup=False) for t in post.tags) if t and t.casefold() != label
    )
    return categories, tags


def post_view(post: Post, theme: Theme, site_url: str) -> PostView:
    body, summary, minutes = _texts(post)
    text_for_excerpt = summary or body
    title = one_line(post.title, markup=False) or post.url
    categories, tags = _terms(post)
    image_url = absolute_http_url(post.image.url) if post.image else None
    return PostView(
        key=post.key,
        url=absolute_http_url(post.url) or site_url,
        title=title,
        author=one_line(post.author, markup=False),
        date=theme.format_date(post.published),
        published=post.published,
        minutes=minutes,
        reading_time=(
            theme.t("minute_read", n=theme.format_number(minutes))
            if minutes >= MIN_READING_MINUTES
            else ""
        ),
        excerpt=excerpt(text_for_excerpt, theme.excerpt_chars),
        long_excerpt=paragraphs_excerpt(
            body or summary, theme.excerpt_chars * SINGLE_EXCERPT_FACTOR
        ),
        image_url=image_url if theme.images else None,
        # Every image gets an alt text (screen readers, images-off clients): the
        # post's own, else its title.
        image_alt=(one_line(post.image.alt, markup=False) if post.image else "") or title,
        tags=tags[:MAX_CHIPS],
        categories=categories,
        source=post.source,
        dir=text_direction_of(f"{title} {summary or body}", theme.direction),
    )


def paragraphs_excerpt(text: str, max_chars: int) -> str:
    """Whole paragraphs (blank-line separated) up to ``max_chars``, the last one cut at a
    sentence or word boundary; the paragraphs stay separate for the single-post layout."""
    out: list[str] = []
    left = max_chars
    for para in text.split("\n\n"):
        para = " ".join(para.split())
        if not para:
            continue
        if len(para) > left:
            if left >= 80 or not out:
                out.append(excerpt(para, left))
            break
        out.append(para)
        left -= len(para)
    return "\n\n".join(out)


@dataclass(frozen=True)
class Group:
    heading: str | None
    posts: list[PostView]


def group_posts(posts: list[PostView], theme: Theme) -> list[Group]:
    """Posts under headings: by first category (in order of appearance) or by local date."""
    if not posts:
        return []
    if theme.layout == "by-category":
        groups: dict[str, list[PostView]] = {}
        for p in posts:
            groups.setdefault(p.categories[0] if p.categories else "", []).append(p)
        other = groups.pop("", None)
        out = [Group(name, ps) for name, ps in groups.items()]
        if other:
            # Uncategorised posts go last, under "More stories" when there are other groups.
            out.append(Group(theme.t("other") if out else None, other))
        return out
    by_day: dict[Any, list[PostView]] = {}
    for p in posts:
        by_day.setdefault(theme.local_date(p.published) if p.published else None, []).append(p)
    if len(by_day) == 1:
        return [Group(None, posts)]  # one day: a heading would only repeat each post's date
    return [
        Group(theme.format_date(day, "full") if day else None, ps) for day, ps in by_day.items()
    ]


def _single_line(text: str) -> str:
    """Subject and preheader: no CR/LF (header injection) or control characters, and no
    bidi overrides (a title's U+202E would reorder the subject the reader sees)."""
    text = "".join(c for c in text if c not in _BIDI_OVERRIDES)
    return " ".join("".join(" " if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text).split())


#: U+202A-U+202E (embeddings, overrides) and U+2066-U+2069 (isolates).
_BIDI_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def sample_unsubscribe_url(site_url: str) -> str:
    """A realistic-length per-recipient unsubscribe URL, for measuring the size as sent."""
    host = urlsplit(site_url).netloc or "example.org"
    return f"https://{host}/unsubscribe?token=" + "x" * 110


SAMPLE_EMAIL = "firstname.lastname@subscriber-example.com"


def size_as_sent(html: str, site_url: str, markers: Markers) -> int:
    """Bytes of the HTML part as it travels: placeholders replaced by realistic-length
    values, then quoted-printable encoded as distrib/render/message.py sends it.

    Gmail's ~102 KB clip is reported to count the encoded part, not the decoded HTML
    (the limit moves with the transfer encoding), so the budget counts what is sent:
    every "=" of an attribute is three bytes, and so is every byte of non-Latin text.
    """
    from .message import qp_encode

    sent = markers.fill(html, url=sample_unsubscribe_url(site_url), email=SAMPLE_EMAIL)
    return len(qp_encode(sent))


def compile_mjml(mjml_source: str, template: str, fonts: dict[str, str]) -> str:
    """MJML -> HTML; every failure becomes a TemplateError naming the template."""
    import mjml  # compiled extension: imported here so `distrib --help` stays fast

    try:
        html = mjml.mjml2html(_protect_marks(mjml_source), fonts=fonts, disable_comments=False)
    except (ValueError, RuntimeError) as e:
        raise TemplateError(
            f"{template}: the MJML does not compile: {_one(e)}; fix the template"
        ) from None
    m = re.search(r"<mj-[a-z-]+", html)
    if m:
        # MRML copies tags it does not know verbatim; a mistyped <mj-colum> would reach
        # the reader as raw markup.
        raise TemplateError(
            f"{template}: unknown MJML tag {m.group(0)}> in the output; fix its name in the template"
        )
    return html


# MRML writes attribute values (and the title it copies into aria-label) with Rust's
# escape_debug, which turns combining marks and format characters into "\u{64b}":
# Arabic harakat, Thai vowels, ZWJ emoji, soft hyphens.  As numeric references they
# pass through untouched and mean the same to every HTML reader.
_ESCAPED_BY_MRML = frozenset(("Mn", "Me", "Cf", "Cc", "Co", "Cs", "Cn", "Zl", "Zp"))
_TAG_OR_TITLE = re.compile(r"<[^<>]+>|(?<=<mj-title>)[^<]*")


def _protect_marks(source: str) -> str:
    def fix(m: re.Match[str]) -> str:
        text = m.group(0)
        if text.isascii():
            return text
        return "".join(
            f"&#x{ord(c):x};"
            if unicodedata.category(c) in _ESCAPED_BY_MRML and c not in "\t\n\r"
            else c
            for c in text
        )

    return _TAG_OR_TITLE.sub(fix, source)


def _one(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


def render_edition(
    settings: Settings,
    posts: list[Post],
    *,
    newsletter: Mapping[str, Any],
    name: str,
    now: datetime,
    web_url: str | None = None,
    max_full: int | None = None,
    markers: Markers | None = None,
    note: str = "",
    clicks: ClickTracker | None = None,
) -> RenderedEdition:
    """Render one edition of ``newsletter`` (its validated table) for ``posts``, newest first.

    At most ``max_full`` posts are shown in full (None: as many as fit), the rest as
    title links under "More in this edition"; when the size budget does not hold even
    those, the last are counted in one "N more stories" line.  An edition that cannot
    fit at all is a TemplateError: never sent clipped.

    The per-recipient gaps are ``markers``, by default a fresh random pair that no post
    can know (see :class:`~distrib.model.Markers`).  ``note`` is the editor's note
    (Markdown) shown above the posts; the newsletter's ``sponsor`` table, a block after
    the lead story.  Both count against the size budget like the posts.  With
    ``clicks`` (``[tracking] clicks = true``) every link but the per-recipient ones goes
    through the click counter (:mod:`distrib.tracking`), counted in the size budget too;
    the originals are the result's ``links``."""
    if not posts:
        raise ValueError("render_edition needs at least one post")
    markers = markers or Markers.new()
    env = make_env(settings)
    theme = theme_for(settings)
    site_url = settings.data["site"]["url"]
    views = [post_view(p, theme, site_url) for p in posts]
    template = _template_of(env, newsletter, views)
    ctx = _context(settings, env, theme, newsletter, name, now, views, web_url, note)
    where = ctx["where"]
    ctx |= {
        "unsubscribe_url": markers.url,
        "recipient_email": markers.email,
        # The reader's preferences page (distrib serve), when a public base URL is known;
        # without one there is no page to link to, and the footer leaves the link out.
        "preferences_url": markers.prefs if public_base_url(settings) else "",
    }
    layout = _Layout(
        env=env,
        html_name=f"email/{template}.mjml.j2",
        theme=theme,
        views=views,
        ctx=ctx,
        site_url=site_url,
        markers=markers,
        budget=int(newsletter.get("size_budget_kb") or 90) * 1024,
        # The "N more stories" line points readers at the rest: the archive, else the site.
        more_url=absolute_http_url(theme.archive_url or "") or site_url,
        clicks=clicks,
    )
    html, c = layout.fit(max_full, where)
    n_full = len(c["full"])
    n_shown = n_full + len(c["overflow"])
    text = _tidy_text(render(env, f"email/{template}.txt.j2", **c))
    links: tuple[str, ...] = ()
    if clicks is not None:
        # The HTML first, as measured, then the text with the same numbers.
        html = clicks.rewrite_html(html, markers)
        text = clicks.rewrite_text(text, markers)
        links = tuple(clicks.links)
    return RenderedEdition(
        subject=ctx["subject"],
        preheader=ctx["preheader"],
        html=html,
        text=text,
        full_keys=tuple(v.key for v in views[:n_full]),
        overflow_keys=tuple(v.key for v in views[n_full:]),
        template=template,
        markers=markers,
        more=len(views) - n_shown,
        links=links,
    )


def _template_of(env: Any, newsletter: Mapping[str, Any], views: list[PostView]) -> str:
    """The edition's template name; both of its files are loaded up front, so that a
    missing or broken template is reported before anything else."""
    template = newsletter.get("template") or DEFAULT_TEMPLATE
    if template == DEFAULT_TEMPLATE and len(views) == 1:
        template = SINGLE_TEMPLATE  # one post: the single-post layout reads better
    get_template(env, f"email/{template}.mjml.j2")
    get_template(env, f"email/{template}.txt.j2")
    return str(template)


def _context(
    settings: Settings,
    env: Any,
    theme: Theme,
    newsletter: Mapping[str, Any],
    name: str,
    now: datetime,
    views: list[PostView],
    web_url: str | None,
    note: str,
) -> dict[str, Any]:
    """What every template of the edition sees (the per-recipient gaps aside), with its
    subject and preheader rendered; ``where`` names the newsletter in error messages."""
    from markupsafe import Markup

    from ..editor import markdown_html, markdown_text, sponsor_view

    site = settings.data["site"]
    site_url = site["url"]
    intro_html = markdown_html(note, site_url) if note.strip() else ""
    sponsor = sponsor_view(newsletter, site_url, theme.t("sponsored"))
    if sponsor is not None:
        sponsor["html"] = Markup(sponsor["html"])  # sanitised by sponsor_view
    base_ctx: dict[str, Any] = {
        "site": site,
        "theme": theme,
        "t": theme.t,
        "format_date": theme.format_date,
        "newsletter": newsletter,
        "newsletter_name": name,
        "now": now,
        "posts": views,
        "web_url": web_url,
        "intro_html": Markup(intro_html),  # sanitised: the allowlist of post HTML
        "intro_text": markdown_text(intro_html) if intro_html else "",
        "sponsor": sponsor,
    }
    where = getattr(newsletter, "where", "") or _where(name)  # a config Section knows its path
    subject = _single_line(
        render_string(
            env, newsletter.get("subject") or "{{ site.name }}", what=f"{where}.subject", **base_ctx
        )
    )
    preheader = _single_line(
        render_string(env, newsletter.get("preheader") or "", what=f"{where}.preheader", **base_ctx)
    )
    return base_ctx | {
        "where": where,
        "subject": subject,
        "preheader": excerpt(preheader, MAX_PREHEADER),
        "date_label": theme.format_date(now, "long"),
        # Inbox previews show the preheader, then whatever text follows in the body
        # ("View in browser"...); invisible ZWNJ + no-break spaces fill that room.
        "preview_filler": PREVIEW_FILLER,
        "count": len(views),
    }


Built = tuple[str, dict[str, Any]]


@dataclass
class _Layout:
    """Which posts are shown in full, which as title links, which only counted, so that
    the HTML as sent stays under the size budget."""

    env: Any
    html_name: str
    theme: Theme
    views: list[PostView]
    ctx: dict[str, Any]
    site_url: str
    markers: Markers
    budget: int
    more_url: str
    clicks: ClickTracker | None

    def html_for(self, n_full: int, n_links: int) -> Built:
        views = self.views
        full, links = views[:n_full], views[n_full : n_full + n_links]
        lead = full[0] if (self.theme.lead_story and full and len(views) > 1) else None
        body = full[1:] if lead else full
        c = self.ctx | {
            "lead": lead,
            "groups": group_posts(body, self.theme),
            "full": full,
            "overflow": links,
            "more": len(views) - n_full - n_links,
            "more_url": self.more_url,
        }
        source = render(self.env, self.html_name, **c)
        return compile_mjml(source, self.html_name, self.theme.fonts), c

    def size(self, html: str) -> int:
        if self.clicks is not None:
            # measured as sent: with the links the reader gets
            html = self.clicks.copy().rewrite_html(html, self.markers)
        return size_as_sent(html, self.site_url, self.markers)

    def fits(self, html: str) -> bool:
        return self.size(html) <= self.budget

    def largest(self, lo: int, hi: int, build: Callable[[int], Built]) -> tuple[int, Built] | None:
        """The largest n in [lo, hi] whose build(n) fits (sizes grow with n), by
        bisection: mrml compiles a 90 KB edition in about a millisecond."""
        best = None
        while lo <= hi:
            mid = (lo + hi) // 2
            built = build(mid)
            if self.fits(built[0]):
                best, lo = (mid, built), mid + 1
            else:
                hi = mid - 1
        return best

    def fit(self, max_full: int | None, where: str) -> Built:
        """The HTML and context of the fullest layout that fits."""
        total = len(self.views)
        cap = total if max_full is None else max(0, min(max_full, total))
        built = self.html_for(cap, total - cap)
        if self.fits(built[0]):
            return built
        # 1. Fewer posts in full, every other one still a title link.
        found = self.largest(1, cap - 1, lambda n: self.html_for(n, total - n))
        if found is not None:
            return found[1]
        # 2. Even the title links do not fit: as many posts in full as fit, then as
        # many links as fit; the rest are counted in one "N more stories" line.
        step = self.largest(0, cap, lambda n: self.html_for(n, 0))
        if step is None:
            smallest = self.size(self.html_for(0, 0)[0])
            raise TemplateError(
                f"{where}: "
                f"this edition cannot fit size_budget_kb = {self.budget // 1024} even with every post "
                f"in one line ({smallest / 1024:.0f} KB as sent); it is not sent clipped: raise "
                "size_budget_kb (Gmail clips at ~102) or slim the template"
            )
        n_full = step[0]
        found_links = self.largest(0, total - n_full, lambda k: self.html_for(n_full, k))
        assert found_links is not None  # k = 0 is step's own fit
        return found_links[1]


def _where(name: str) -> str:
    return "digest" if name == "digest" else f"newsletters ({name})"


def _tidy_text(text: str) -> str:
    """No trailing spaces, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def _sample_posts(now: datetime) -> list[Post]:
    from datetime import timedelta

    from ..model import Image

    return [
        Post(
            key=f"distrib-check-{i}",
            url=f"https://example.org/check/{i}",
            title=f"Sample post {i}",
            source="check",
            summary="A sample summary used to try the templates.",
            content="<p>A sample paragraph used to try the templates.</p>",
            author="Sample Author",
            published=now - timedelta(hours=i),
            tags=("sample",),
            categories=("Sample",) if i % 2 else (),
            image=Image("https://example.org/check.png", "A sample image") if i != 2 else None,
        )
        for i in range(1, 4)
    ]


def check_templates(
    settings: Settings, newsletters: list[tuple[str, Mapping[str, Any]]], now: datetime
) -> list[str]:
    """Render every newsletter's templates (digest and one-post forms) on sample posts;
    the problems found, one line each (for `distrib check`, which then exits 2)."""
    problems: list[str] = []
    sample = _sample_posts(now)
    for name, newsletter in newsletters:
        for posts in (sample, sample[:1]):
            try:
                r = render_edition(settings, posts, newsletter=newsletter, name=name, now=now)
            except TemplateError as e:
                msg = str(e)
                if msg not in problems:
                    problems.append(msg)
                continue
            if r.markers.url not in r.html or r.markers.url not in r.text:
                msg = f"email/{r.template} templates: no unsubscribe link; keep {{{{ unsubscribe_url }}}} in the footer"
                if msg not in problems:
                    problems.append(msg)
    return problems
