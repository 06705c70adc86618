"""How long a text is, the way each network counts it.

* X: the twitter-text v3 "weighted length" (https://github.com/twitter/twitter-text,
  ``config/v3.json`` and ``conformance/validate.yml``): the text is NFC-normalised; a
  code point in one of the ranges of ``_X_LIGHT`` weighs 1, any other weighs 2; one emoji
  sequence (ZWJ family, skin tone, flag, keycap, VS16) weighs 2 in total; every URL,
  bare domains such as ``example.com`` included, weighs 23 (``transformedURLLength``).
  The limit is 280.  No maintained Python library implements this, so it lives here.
* Mastodon: grapheme clusters, an http(s) URL counts as the instance's
  ``characters_reserved_per_url`` (23) and ``@user@domain`` as ``@user``
  (app/validators/status_length_validator.rb in mastodon/mastodon).
* Bluesky: at most 300 graphemes and 3000 UTF-8 bytes
  (https://docs.bsky.app/docs/advanced-guides/post-richtext).

Contains no I/O.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

import regex

#: Code point ranges of weight 1 in twitter-text v3 (config/v3.json "ranges").
_X_LIGHT = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
X_URL_LENGTH = 23
X_LIMIT = 280

# Top-level domains a bare domain may end in.  twitter-text ships the whole IANA list;
# this is the part people actually link to: the generic ones in use and every
# country code (ISO 3166-1 alpha-2 and the few exceptional ccTLDs).
_GTLDS = """
com net org edu gov mil int info biz name pro mobi aero asia cat coop jobs museum tel
travel xxx io co ai app dev me tv ly gl fm to cc ws sh gg im la am ac so vc
xyz online site tech blog news page store shop website space club live life world today
cloud digital media email group agency studio design network systems solutions social
art wiki top vip one link click zone run fun games guru codes tools software social
health law money finance capital ventures works city london berlin paris tokyo nyc
moscow kiev kyiv africa eus gal scot wales bzh quebec swiss amsterdam brussels
google youtube amazon apple microsoft xn--p1ai xn--j1amh xn--90ais xn--fiqs8s xn--fiqz9s
""".split()
_CCTLDS = """
ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bm bn bo
br bs bt bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm
do dz ec ee eg er es et eu fi fj fk fm fo fr ga gd ge gf gg gh gi gl gm gn gp gq gr gs
gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km
kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mg mh mk ml mm mn mo mp
mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk
pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sk sl sm sn so sr ss
st su sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug uk us uy uz va
vc ve vg vi vn vu wf ws ye yt za zm zw
""".split()
# RFC 2606 reserves these for documentation and tests; twitter-text does not link them,
# but the sample site and the tests use them, and no real post links to one.
_RESERVED = ("example", "test")
TLDS = frozenset(_GTLDS) | frozenset(_CCTLDS) | frozenset(_RESERVED)

_TLD_ALT = "|".join(sorted(TLDS, key=len, reverse=True))
_LABEL = r"[\p{L}\p{N}](?:[\p{L}\p{N}\-_]{0,61}[\p{L}\p{N}])?"
_ASCII_LABEL = r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?"

# A URL: with a scheme (any host whose last label is a known TLD, unicode hosts
# allowed), or a bare ASCII domain (twitter-text links those only with a valid TLD).
# It may not be glued to a word, a mention, a cashtag or an address before it, and the
# path runs to the next space; trailing punctuation is trimmed afterwards.
URL_RE = regex.compile(
    rf"""
    (?<![\p{{L}}\p{{N}}@＠$#＃/.\-_])
    (?:
        (?P<scheme>https?://)(?:{_LABEL}\.)+(?:{_TLD_ALT})
      | (?:{_ASCII_LABEL}\.)+(?:{_TLD_ALT})
    )
    (?![\p{{L}}\p{{N}}\-_@])
    (?::\d{{1,5}})?
    (?:[/?\#][^\s]*)?
    """,
    regex.IGNORECASE | regex.VERBOSE,
)
_TRAILING = ".,:;!?'\"…»”’"


def iter_urls(text: str, *, require_scheme: bool = False) -> Iterator[tuple[int, int, str]]:
    """(start, end, url) of every URL in ``text``, in order (string indices)."""
    for m in URL_RE.finditer(text):
        if require_scheme and not m.group("scheme"):
            continue
        url = m.group(0)
        url = _trim_url(url)
        if url:
            yield m.start(), m.start() + len(url), url


def _trim_url(url: str) -> str:
    # "see https://example.org/a." ends the sentence, not the path; a closing paren
    # belongs to the URL only when it closes one the URL opened (Wikipedia links).
    while url:
        last = url[-1]
        if last in _TRAILING:
            url = url[:-1]
        elif last == ")" and url.count("(") < url.count(")"):
            url = url[:-1]
        else:
            break
    return url


_GRAPHEME = regex.compile(r"\X")


def graphemes(text: str) -> list[str]:
    """The user-perceived characters of ``text`` (Unicode extended grapheme clusters)."""
    return _GRAPHEME.findall(text)


_EMOJI_PRESENTATION = regex.compile(r"\p{Emoji_Presentation}")
_FLAG = regex.compile(r"\p{Regional_Indicator}{2}")
_MODIFIER = regex.compile(r"\p{Emoji_Modifier}")
_PICTOGRAPHIC = regex.compile(r"\p{Extended_Pictographic}|\p{Emoji_Presentation}")


def _is_emoji_cluster(cluster: str) -> bool:
    """Does the grapheme cluster display as one emoji (twitter-text's emoji regex)?"""
    if len(cluster) == 1:
        return cluster.isascii() is False and _EMOJI_PRESENTATION.match(cluster) is not None
    if "\u20e3" in cluster:  # keycap: 1️⃣ #️⃣
        return True
    if _FLAG.search(cluster):  # flag
        return True
    if "\ufe0f" in cluster or "\u200d" in cluster or _MODIFIER.search(cluster):
        return _PICTOGRAPHIC.search(cluster) is not None
    if "\U000e007f" in cluster:  # subdivision flags: tag sequences ending in CANCEL TAG
        return True
    return _EMOJI_PRESENTATION.match(cluster) is not None


def _x_weight(ch: str) -> int:
    cp = ord(ch)
    for lo, hi in _X_LIGHT:
        if lo <= cp <= hi:
            return 1
    return 2


def _x_plain(text: str) -> int:
    if text.isascii():
        return len(text)  # the common case: every character weighs 1, no emoji
    total = 0
    for cluster in graphemes(text):
        if _is_emoji_cluster(cluster):
            total += 2
        else:
            total += sum(_x_weight(ch) for ch in cluster)
    return total


def x_length(text: str) -> int:
    """twitter-text v3 weighted length (the limit is :data:`X_LIMIT`)."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    pos = 0
    for start, end, _url in iter_urls(text):
        total += _x_plain(text[pos:start]) + X_URL_LENGTH
        pos = end
    return total + _x_plain(text[pos:])


# Mastodon's MENTION_RE, reduced: @user@domain counts as @user.
_MENTION_RE = regex.compile(
    r"(?<![\p{L}\p{N}_/@])@(?P<user>[a-z0-9_]+(?:[a-z0-9_.\-]+[a-z0-9_]+)?)"
    r"@[\p{L}\p{N}\-]+(?:\.[\p{L}\p{N}\-]+)+",
    regex.IGNORECASE,
)


def mastodon_countable(text: str, url_length: int = 23) -> str:
    """The text Mastodon counts: URLs as ``url_length`` x's, remote mentions as @user."""
    out = []
    pos = 0
    for start, end, _url in iter_urls(text, require_scheme=True):
        out.append(text[pos:start])
        out.append("x" * url_length)
        pos = end
    out.append(text[pos:])
    return _MENTION_RE.sub(lambda m: "@" + m.group("user"), "".join(out))


def mastodon_length(text: str, url_length: int = 23) -> int:
    """Grapheme clusters, an http(s) URL as ``url_length``, ``@user@domain`` as ``@user``."""
    return len(graphemes(mastodon_countable(text, url_length)))


def bluesky_length(text: str) -> tuple[int, int]:
    """(graphemes, UTF-8 bytes): Bluesky allows 300 and 3000."""
    return len(graphemes(text)), len(text.encode("utf-8"))


BLUESKY_GRAPHEMES = 300
BLUESKY_BYTES = 3000
