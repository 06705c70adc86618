"""The nouns that flow between distrib's phases: plain, frozen data.

sources -> Post -> select -> Edition -> render -> deliver -> ledger (Delivery).
Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

#: Placeholders the renderer writes into an edition's HTML and text.  The message
#: builder substitutes the per-recipient values into the finished bytes (DESIGN,
#: promise 5), so an edition is rendered once whatever the number of recipients.
#: They are plain ASCII letters so that no encoding (quoted-printable, HTML
#: escaping, MJML) alters them.
PLACEHOLDER_UNSUBSCRIBE_URL = "XDISTRIBUNSUBSCRIBEURLX"
PLACEHOLDER_EMAIL = "XDISTRIBRECIPIENTEMAILX"
PLACEHOLDERS = (PLACEHOLDER_UNSUBSCRIBE_URL, PLACEHOLDER_EMAIL)


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
            "image": (
                {"url": self.image.url, "alt": self.image.alt} if self.image else None
            ),
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
    #: how many of the last ``overflow_keys`` did not fit even as title links and are
    #: counted in one "N more stories" line instead.
    more: int = 0


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
    status: str = "sending"  # sending | done


class DeliveryStatus(StrEnum):
    CLAIMED = "claimed"  # handed to a mailer/channel; outcome unknown
    SENT = "sent"
    FAILED = "failed"  # for good; not retried
    DEFERRED = "deferred"  # retried by a later run


@dataclass(frozen=True, slots=True)
class Outcome:
    """A mailer's or channel's verdict on one item."""

    status: DeliveryStatus
    remote_id: str = ""
    error: str = ""
    retry_after: float | None = None  # seconds, when deferred and the remote said
    bounce: bool = False  # a hard bounce: the address goes on the suppression list

    @classmethod
    def sent(cls, remote_id: str = "") -> Outcome:
        return cls(DeliveryStatus.SENT, remote_id=remote_id)

    @classmethod
    def failed(cls, error: str, *, bounce: bool = False) -> Outcome:
        return cls(DeliveryStatus.FAILED, error=error, bounce=bounce)

    @classmethod
    def deferred(cls, error: str, retry_after: float | None = None) -> Outcome:
        return cls(DeliveryStatus.DEFERRED, error=error, retry_after=retry_after)


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
