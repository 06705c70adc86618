"""The nouns that flow between distrib's phases: plain, frozen data.

sources -> Post -> select -> Edition -> render -> deliver -> ledger (Delivery).
Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

#: The fixed placeholders of editions recorded before markers had a nonce (ledger
#: schema 1).  Only such an edition, resumed, is filled through them; a new edition
#: gets :meth:`Markers.new`, and these strings in a post are text like any other.
PLACEHOLDER_UNSUBSCRIBE_URL = "XDISTRIBUNSUBSCRIBEURLX"
PLACEHOLDER_EMAIL = "XDISTRIBRECIPIENTEMAILX"
#: ... and of the preferences link, which those editions never held (the golden files,
#: rendered with the fixed markers, show it).
PLACEHOLDER_PREFERENCES_URL = "XDISTRIBPREFERENCESURLX"
PLACEHOLDERS = (PLACEHOLDER_UNSUBSCRIBE_URL, PLACEHOLDER_EMAIL)

_NONCE = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Markers:
    """The gaps the renderer leaves in an edition's HTML and text for the per-recipient
    values (the unsubscribe URL, the address, the preferences URL), filled into the finished bytes per
    recipient so that an edition is rendered once whatever the number of recipients.

    Each edition gets its own random ``nonce`` at render time, kept with the edition in
    the ledger: no post, feed or template text can know it, so text that looks like a
    marker (the old fixed ones, or another edition's) is sent as it is, never filled.
    They are plain ASCII letters and digits, so that no encoding (quoted-printable, HTML
    escaping, MJML) alters them.  ``nonce == ""`` is the fixed pair of editions
    recorded before the nonce existed, kept so that such an edition can be resumed.
    """

    nonce: str = ""

    def __post_init__(self) -> None:
        if self.nonce and not _NONCE.fullmatch(self.nonce):
            raise ValueError(f"not a marker nonce: {self.nonce!r}")

    @classmethod
    def new(cls) -> Markers:
        return cls(secrets.token_hex(16))

    @property
    def url(self) -> str:
        return f"XDISTRIBUNSUBSCRIBEURL{self.nonce}X" if self.nonce else PLACEHOLDER_UNSUBSCRIBE_URL

    @property
    def email(self) -> str:
        return f"XDISTRIBRECIPIENTEMAIL{self.nonce}X" if self.nonce else PLACEHOLDER_EMAIL

    @property
    def prefs(self) -> str:
        """The gap of the reader's preferences-page URL."""
        return f"XDISTRIBPREFERENCESURL{self.nonce}X" if self.nonce else PLACEHOLDER_PREFERENCES_URL

    def split(self, text: str) -> list[str]:
        """``text`` cut at the markers: text, marker, text, marker, ..., text."""
        found = "|".join(re.escape(m) for m in (self.url, self.email, self.prefs))
        return re.split(f"({found})", text)

    def fill(self, text: str, *, url: str, email: str, prefs: str | None = None) -> str:
        """``text`` with the values in the gaps, in one pass (a value is never searched
        for markers again).  ``prefs`` defaults to ``url``: where there is no
        preferences page, its link leads where the unsubscribe link does."""
        values = {self.url: url, self.email: email, self.prefs: url if prefs is None else prefs}
        pieces = self.split(text)
        for i in range(1, len(pieces), 2):
            pieces[i] = values[pieces[i]]
        return "".join(pieces)


@dataclass(frozen=True, slots=True)
class Image:
    url: str
    alt: str = ""
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class Post:
    """One normalised item from any source.

    ``key`` is stable across fetches: the guid / Atom id, else the canonical URL.
    ``content`` is sanitised HTML; ``summary`` is plain text.  Datetimes are aware (UTC).
    """

    key: str
    url: str
    title: str
    source: str
    summary: str = ""
    content: str = ""
    author: str = ""
    published: datetime | None = None
    updated: datetime | None = None
    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    image: Image | None = None

    @property
    def content_hash(self) -> str:
        """Tells an edited post from the one we saw; never used as the key."""
        h = hashlib.sha256()
        for part in (self.title, self.summary, self.content):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
        return h.hexdigest()[:32]

    def to_json(self) -> dict[str, Any]:
        """The shape of `distrib posts --json` (a contract: keys only grow)."""
        return {
            "key": self.key,
            "url": self.url,
            "title": self.title,
            "author": self.author or None,
            "published": self.published.isoformat() if self.published else None,
            "updated": self.updated.isoformat() if self.updated else None,
            "tags": list(self.tags),
            "categories": list(self.categories),
            "summary": self.summary,
            "image": ({"url": self.image.url, "alt": self.image.alt} if self.image else None),
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class RenderedEdition:
    """What the email renderer returns: the parts of one edition, with placeholders."""

    subject: str
    preheader: str
    html: str
    text: str
    #: keys of posts shown in full, then those listed only as title links because
    #: the HTML would have gone over the size budget.
    full_keys: tuple[str, ...] = ()
    overflow_keys: tuple[str, ...] = ()
    template: str = "digest"
    #: where ``html`` and ``text`` leave the per-recipient gaps
    markers: Markers = Markers()
    #: how many of the last ``overflow_keys`` did not fit even as title links and are
    #: counted in one "N more stories" line instead.
    more: int = 0
    #: with click tracking: the original URL of each tracked link, link n at n - 1
    links: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Edition:
    """One digest issue, frozen once recorded: a resumed send sends these bytes."""

    id: int
    newsletter: str
    post_keys: tuple[str, ...]
    subject: str
    preheader: str
    created: datetime
    html: str
    text: str
    status: str = "sending"  # sending | done | awaiting (approval) | rejected
    #: where ``html`` and ``text`` leave the per-recipient gaps (kept in the ledger)
    markers: Markers = Markers()


class DeliveryStatus(StrEnum):
    CLAIMED = "claimed"  # handed to a mailer/channel; outcome unknown
    SENT = "sent"
    FAILED = "failed"  # for good; not retried
    DEFERRED = "deferred"  # retried by a later run
    #: The request timed out after it was sent: the provider may have the message.
    #: Not resent unless ``[email] resend_in_doubt = true``.
    IN_DOUBT = "in_doubt"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A mailer's or channel's verdict on one item."""

    status: DeliveryStatus
    remote_id: str = ""
    error: str = ""
    retry_after: float | None = None  # seconds, when deferred and the remote said
    bounce: bool = False  # a hard bounce: the address goes on the suppression list
    #: Deferred because the account or the config is wrong, not because of this
    #: recipient: the delivery is put back as if never tried (no attempt counted).
    release: bool = False

    @classmethod
    def sent(cls, remote_id: str = "") -> Outcome:
        return cls(DeliveryStatus.SENT, remote_id=remote_id)

    @classmethod
    def failed(cls, error: str, *, bounce: bool = False) -> Outcome:
        return cls(DeliveryStatus.FAILED, error=error, bounce=bounce)

    @classmethod
    def deferred(cls, error: str, retry_after: float | None = None) -> Outcome:
        return cls(DeliveryStatus.DEFERRED, error=error, retry_after=retry_after)

    @classmethod
    def released(cls, error: str) -> Outcome:
        """Not sent because of a setup problem: pending again, for the run after the fix."""
        return cls(DeliveryStatus.DEFERRED, error=error, retry_after=0, release=True)

    @classmethod
    def in_doubt(cls, error: str) -> Outcome:
        """Sent, but no answer came: the provider may or may not have accepted it."""
        return cls(DeliveryStatus.IN_DOUBT, error=error)


@dataclass(frozen=True, slots=True)
class Facet:
    """A rich-text span for networks that want them (Bluesky): UTF-8 byte offsets."""

    byte_start: int
    byte_end: int
    kind: str  # link | tag | mention
    value: str  # the URI, the tag without '#', the DID/handle


@dataclass(frozen=True, slots=True)
class Snippet:
    """The text one channel will post for one post."""

    channel: str
    post_key: str
    text: str
    link: str
    length: int
    limit: int
    hashtags: tuple[str, ...] = ()
    image: Image | None = None
    facets: tuple[Facet, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The shape of `distrib share --dry-run --json` (a contract)."""
        out: dict[str, Any] = {
            "channel": self.channel,
            "post": self.post_key,
            "text": self.text,
            "length": self.length,
            "limit": self.limit,
            "link": self.link,
            "hashtags": list(self.hashtags),
        }
        if self.facets:
            out["facets"] = [
                {"byteStart": f.byte_start, "byteEnd": f.byte_end, "type": f.kind, "value": f.value}
                for f in self.facets
            ]
        return out


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False)
