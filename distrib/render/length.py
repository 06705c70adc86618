"""How long a text is, the way each network counts it.

Each counter follows a reference implementation, and where distrib and the reference
disagree distrib is wrong (``tests/reference`` runs them side by side):

* X: npm ``twitter-text`` 3.1.0 ``parseTweet(text).weightedLength`` (config v3): the
  text is NFC-normalised; a URL as twitter-text extracts it (bare domains such as
  ``example.com`` included, any IANA top-level domain) weighs 23; an emoji that
  ``twemoji-parser`` recognises weighs 2 whatever its length; any other UTF-16 code unit
  weighs 1 in U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F and U+2032-U+2037, else 2 (a
  surrogate pair 2 in all).  So an emoji twemoji does not know, such as the transgender
  flag, weighs by its parts: 7.  The limit is 280.
* Mastodon: grapheme clusters of the text once every URL that twitter-text extracts with
  a scheme required (``extractUrlsWithoutProtocol: false``) is replaced by the instance's
  ``characters_reserved_per_url`` (23) characters and every ``@user@domain`` mention
  (``Account::MENTION_RE``) by ``@user`` -- as Mastodon's ``StatusLengthValidator`` does.
* Bluesky: at most 300 graphemes and 3000 UTF-8 bytes, URLs counted as written
  (https://docs.bsky.app/docs/advanced-guides/post-richtext).

The URL and emoji recognisers live in :mod:`.entities`.  Contains no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator

import regex

from .entities import (
    X_LIMIT,
    X_URL_LENGTH,
    mastodon_entities,
    parse_tweet,
    to_units,
    twitter_urls,
    unit_to_char_index,
)

__all__ = [
    "BLUESKY_BYTES",
    "BLUESKY_GRAPHEMES",
    "X_LIMIT",
    "X_URL_LENGTH",
    "bluesky_length",
    "graphemes",
    "iter_urls",
    "mastodon_countable",
    "mastodon_length",
    "x_length",
    "x_valid",
]


def iter_urls(text: str, *, require_scheme: bool = False) -> Iterator[tuple[int, int, str]]:
    """(start, end, url) of every URL twitter-text finds in ``text`` (``str`` indices).

    ``require_scheme`` asks for Mastodon's view: only URLs written with http(s)://.
    """
    units = to_units(text)
    index = unit_to_char_index(text) if len(units) != len(text) else None
    for u in twitter_urls(units, without_protocol=not require_scheme):
        start, end = (index[u.start], index[u.end]) if index else (u.start, u.end)
        yield start, end, text[start:end]


_GRAPHEME = regex.compile(r"\X")


def graphemes(text: str) -> list[str]:
    """The user-perceived characters of ``text`` (Unicode extended grapheme clusters)."""
    return _GRAPHEME.findall(text)


def x_length(text: str) -> int:
    """twitter-text v3 weighted length (the limit is :data:`X_LIMIT`)."""
    return parse_tweet(text)[0]


def x_valid(text: str) -> bool:
    """twitter-text's ``parseTweet(text).valid``: not empty, at most 280, no U+FFFE/FEFF/FFFF."""
    return parse_tweet(text)[1]


def mastodon_countable(text: str, url_length: int = 23) -> str:
    """The text Mastodon counts: URLs as ``url_length`` x's, remote mentions as @user."""
    out = []
    pos = 0
    for start, end, replacement in mastodon_entities(text):
        out.append(text[pos:start])
        out.append(replacement or "x" * url_length)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def mastodon_length(text: str, url_length: int = 23) -> int:
    """Grapheme clusters, an http(s) URL as ``url_length``, ``@user@domain`` as ``@user``."""
    return len(graphemes(mastodon_countable(text, url_length)))


def bluesky_length(text: str) -> tuple[int, int]:
    """(graphemes, UTF-8 bytes): Bluesky allows 300 and 3000."""
    return len(graphemes(text)), len(text.encode("utf-8"))


BLUESKY_GRAPHEMES = 300
BLUESKY_BYTES = 3000
