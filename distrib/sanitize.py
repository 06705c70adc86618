"""Make untrusted post markup and text safe to show (ARCHITECTURE.md, promise 4: hostile content stays inert).

Two steps for HTML: nh3 (the Rust ``ammonia`` sanitiser) applies the allowlist and
drops script/style/iframe with their content; then a small serialiser re-emits the
result as well-formed, XML-ish HTML (void tags self-closed, every ``<`` and ``&`` in
text escaped, only ``&amp; &lt; &gt; &quot;`` as entities), because MJML (mrml)
parses the body of ``<mj-text>`` and rejects a bare ``<``.  The serialiser is also
where links are made absolute and ``rel="noopener"`` is set.

The text helpers (:func:`one_line`, :func:`html_to_text`, :func:`excerpt`) are for
titles, authors, tags, summaries and the text part of the email.
Contains no business logic.
"""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import nh3

#: The tags post HTML may keep; everything else is unwrapped (its text stays).
ALLOWED_TAGS = frozenset(
    {
        "p", "br", "a", "strong", "em", "b", "i", "u", "s", "sub", "sup", "small",
        "ul", "ol", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "img", "figure", "figcaption",
        "code", "pre", "hr", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption",
    }
)  # fmt: skip

#: Tags removed together with their content (a script's text is not prose).
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math",
     "head", "title", "textarea", "select", "button", "form", "frameset", "frame", "applet"}
)  # fmt: skip

_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"dir", "lang", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}

_VOID = frozenset({"br", "hr", "img"})
#: The email's own template owns the top heading level; post headings start at h2.
_RENAME = {"h1": "h2", "h5": "h4", "h6": "h4"}
_URL_ATTRS = {("a", "href"), ("img", "src")}
_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_HTTP = frozenset({"http", "https"})
_NUMERIC_ATTRS = {"width", "height", "colspan", "rowspan", "start"}


def absolute_http_url(url: str | None, base: str | None = None) -> str | None:
    """``url`` resolved against ``base``, or None unless the result is http(s) with a host."""
    return _absolute(url, base, _HTTP)


def _absolute(url: str | None, base: str | None, schemes: frozenset[str]) -> str | None:
    if not url or not isinstance(url, str):
        return None
    # Browsers strip ASCII whitespace and control characters from URLs
    # (https://url.spec.whatwg.org/#concept-basic-url-parser); do the same before
    # checking the scheme, so "java\nscript:" cannot slip through as relative.
    url = "".join(ch for ch in url.strip() if ord(ch) > 0x20 and ord(ch) != 0x7F)
    if not url:
        return None
    if base:
        try:
            url = urljoin(base, url)
        except ValueError:
            return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        return None
    if scheme != "mailto" and not parts.netloc:
        return None
    if scheme == "mailto" and not parts.path:
        return None
    return url


class _Serialiser(HTMLParser):
    """Re-emits nh3's output as XML-ish HTML, fixing URLs on the way."""

    def __init__(self, base_url: str | None):
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.out: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            return
        tag = _RENAME.get(tag, tag)
        kept: list[tuple[str, str]] = []
        for name, value in attrs:
            if value is None:
                continue
            if (tag, name) in _URL_ATTRS:
                schemes = _LINK_SCHEMES if tag == "a" else _HTTP
                fixed = _absolute(value, self.base_url, schemes)
                if fixed is None:
                    continue
                value = fixed
            elif name in _NUMERIC_ATTRS:
                if not value.strip().isdigit():
                    continue
                value = value.strip()
            elif name == "dir" and value.lower() not in ("ltr", "rtl", "auto"):
                continue
            kept.append((name, value))
        if tag == "img" and not any(n == "src" for n, _ in kept):
            return  # an image we cannot show safely is better gone than broken
        if tag == "a" and any(n == "href" for n, _ in kept):
            kept.append(("rel", "noopener"))
        text = "".join(f' {n}="{html.escape(v, quote=True)}"' for n, v in kept)
        if tag in _VOID:
            self.out.append(f"<{tag}{text}/>")
        else:
            self.out.append(f"<{tag}{text}>")
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        tag = _RENAME.get(tag, tag)
        if tag not in ALLOWED_TAGS or tag in _VOID or tag not in self.open:
            return
        while self.open:
            last = self.open.pop()
            self.out.append(f"</{last}>")
            if last == tag:
                break

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(_strip_controls(data, keep_newlines=True), quote=False))

    def result(self) -> str:
        self.close()
        while self.open:
            self.out.append(f"</{self.open.pop()}>")
        return "".join(self.out)


def clean_html(html_text: str, base_url: str | None = None) -> str:
    """Sanitised post HTML: the allowlist, absolute http(s)/mailto links, MJML-safe."""
    if not html_text:
        return ""
    cleaned = nh3.clean(
        html_text,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={k: set(v) for k, v in _ATTRIBUTES.items()},
        link_rel=None,  # the serialiser adds rel="noopener" to the links it keeps
        url_schemes=set(_LINK_SCHEMES),
        strip_comments=True,
    )
    ser = _Serialiser(base_url)
    ser.feed(cleaned)
    return ser.result().strip()


# --- text ------------------------------------------------------------------------

_TAG_RE = re.compile(r"<(?:/?[A-Za-z][^<>]*|!--.*?--|![^<>]*|\?[^<>]*)>", re.S)
_ENTITY_RE = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")
_WS_RE = re.compile(r"\s+")


def _strip_controls(text: str, *, keep_newlines: bool = False) -> str:
    """Drop C0/C1 control characters (not tab/newline when asked); keep format chars (ZWJ)."""
    out = []
    for ch in text:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o < 0xA0:
            if keep_newlines and ch in "\t\n":
                out.append(ch)
            elif ch in "\t\n\r\f\v":
                out.append(" ")
            continue
        if ch in "\u2028\u2029\ufffe\uffff":
            out.append(" " if ch in "\u2028\u2029" else "")
            continue
        if 0xD800 <= o <= 0xDFFF:  # lone surrogates cannot be encoded
            continue
        out.append(ch)
    return "".join(out)


def _unescape_all(text: str, rounds: int = 3) -> str:
    """Decode entities, again while some remain: feeds double-escape (``&amp;amp;``, ``&amp;#8217;``)."""
    for _ in range(rounds):
        if not _ENTITY_RE.search(text):
            break
        text = html.unescape(text)
    return text


def one_line(text: str | None, *, markup: bool = True) -> str:
    """Plain one-line text for titles, authors and tags: no tags, entities decoded, no CR/LF.

    ``markup``: the value may hold HTML (an RSS/WordPress title), whose own tags are
    dropped; what the entities then decode to is text and stays text: a title
    "Why &lt;script&gt; tags are dangerous" keeps its "<script>" (it is escaped again
    wherever it is shown, never interpreted).  ``markup=False``: the value is already
    text (feedparser's text/plain titles), and nothing in it is taken for a tag.
    """
    if not text:
        return ""
    # Controls go first (raw and once decoded): dropping one later could join the
    # pieces of a tag ("<\x1f?>" -> "<?>") after the tags were removed.
    text = _strip_controls(str(text))
    if markup:
        text = _TAG_RE.sub(" ", text)
    text = _strip_controls(_unescape_all(text))
    return _WS_RE.sub(" ", text).strip()


_BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "header", "footer", "aside", "main", "nav",
     "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "figure",
     "figcaption", "table", "tr", "hr", "dl", "dt", "dd", "address", "details", "summary"}
)  # fmt: skip


class _TextExtractor(HTMLParser):
    def __init__(self, alt: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.alt = alt
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self.skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")
            if tag == "pre":
                self.pre += 1
        elif tag == "img" and self.alt:
            alt = dict(attrs).get("alt")
            if alt and not self.skip:
                self.parts.append(f"[{alt}]")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in DROPPED_WITH_CONTENT:
            self.skip = max(0, self.skip - 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self.skip = max(0, self.skip - 1)
        elif tag == "li":
            pass  # the next item starts its own line; the list's end closes the block
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")
            if tag == "pre":
                self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            # Private-use stand-ins protect a <pre>'s layout from the collapse below.
            self.parts.append(data.replace("\n", "\ue000").replace(" ", "\ue001"))
        else:
            self.parts.append(_WS_RE.sub(" ", data))


def html_to_text(html_text: str | None, *, alt: bool = False) -> str:
    """Plain text of an HTML fragment: paragraphs as blank-line-separated blocks, entities decoded.

    ``alt=True`` writes each image's alt text as ``[alt]`` where the image was.
    """
    if not html_text:
        return ""
    parser = _TextExtractor(alt)
    parser.feed(html_text)
    parser.close()
    raw = _strip_controls("".join(parser.parts), keep_newlines=True)
    blocks = []
    for block in re.split(r"\n\s*\n", raw):
        lines = [_WS_RE.sub(" ", line).strip() for line in block.split("\n")]
        text = "\n".join(line for line in lines if line)
        if text:
            blocks.append(text.replace("\ue000", "\n").replace("\ue001", " "))
    return "\n\n".join(blocks)


_SENTENCE_END = re.compile(r"[.!?…][\"'”’»)\]]*\s|[。！？؟]")


def excerpt(text: str | None, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars``: at a sentence end when one is in the last
    third (no "…": it reads complete), else at a word boundary with "…"."""
    text = _WS_RE.sub(" ", text or "").strip()
    if len(text) <= max_chars:
        return text
    if max_chars <= 1:
        return "…"[:max_chars]
    window = text[: max_chars + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() <= max_chars]
    if ends and ends[-1] >= max_chars * 2 // 3:
        return window[: ends[-1]].strip()
    cut = window[: max_chars - 1]
    space = cut.rfind(" ")
    if space >= max_chars // 2:
        cut = cut[:space]
    else:
        # No space near the end (CJK, one long word): cut between characters, but not
        # inside a grapheme (combining marks, ZWJ sequences, variation selectors).
        while cut and len(cut) < len(text) and _continues(text[len(cut)]):
            cut = cut[:-1]
    return cut.rstrip(" ,;:-–—") + "…"


def _continues(ch: str) -> bool:
    return (
        unicodedata.combining(ch) > 0
        or ch in "\u200d\ufe0e\ufe0f"
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or 0x1F3FB <= ord(ch) <= 0x1F3FF  # skin-tone modifiers
        or 0xE0020 <= ord(ch) <= 0xE007F  # tag characters of flag sequences
    )
