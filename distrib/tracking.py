"""Click counts per link (``[tracking] clicks = true``): the rewriting and the redirect.

When an edition is rendered (once, for every recipient), each ``http(s)`` link of its
HTML and text parts becomes ``<public URL>/c/<edition>/<link>/<sig>``: the links are
numbered from 1 in the order they first appear, the same URL keeps one number, and
``sig`` is an HMAC-SHA256 of the edition, the number and the original URL under a key
the ledger makes on first use (kv ``tracking:key``), cut to 16 bytes.  The numbers and
URLs are kept with the edition in the ledger (``edition_links``).  Nothing identifies the
reader: the same URL goes to everyone, so a count is per link, never per person.

Left as they are: the per-recipient links (the unsubscribe link and any other gap of
the edition's :class:`~distrib.model.Markers`), ``distrib serve``'s own pages
(unsubscribe, preferences, confirm), ``mailto:`` and anything not ``http(s)``.

``GET /c/<edition>/<link>/<sig>`` (served whether tracking is on or not, so that the
links of editions already sent keep working) answers 302 to the original URL after adding one to
its count (committed with a full sync); anything else (a wrong signature, an unknown
edition or link, a malformed number, an encoded slash) is 404 without a ``Location``,
so the endpoint cannot be made to redirect anywhere distrib did not write.  ``HEAD``
and requests that say they are prefetches or come from known link scanners are
redirected without being counted; scanners that pass as browsers still inflate counts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import quote

from .web import Request, Response, text

if TYPE_CHECKING:
    from .config import Settings
    from .ledger import Ledger
    from .model import Markers

_KV_KEY = "tracking:key"
#: bytes of the HMAC kept in a link (128 bits: 22 base64url characters)
SIG_BYTES = 16
#: the path of a tracked link, as matched on the still-encoded request path
CLICK_PATH = re.compile(
    r"/c/(?P<edition>[1-9][0-9]{0,9})/(?P<link>[1-9][0-9]{0,5})/(?P<sig>[A-Za-z0-9_-]{22})"
)
#: the largest edition number looked up (a 32-bit INTEGER in PostgreSQL)
MAX_EDITION = 2**31 - 1
#: pages of `distrib serve` itself: per-reader links, never tracked
_OWN_PAGES = ("/unsubscribe", "/preferences", "/confirm", "/c/")

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_TEXT_URL = re.compile(r"https?://[^\s<>\"'\x00-\x1f\x7f]+", re.IGNORECASE)
#: characters a URL written in text ends with that belong to the sentence around it
_TRAILING = ".,;:!?)]}*_"
#: a URL as it may go in a Location header: printable ASCII, no spaces
_SAFE_URL = re.compile(r"https?://[\x21-\x7e]+", re.IGNORECASE)
#: what may stay as it is when a non-ASCII URL is percent-encoded
_URL_SAFE_CHARS = "".join(chr(c) for c in range(0x21, 0x7F))


def enabled(settings: Settings) -> bool:
    return bool((settings.data.get("tracking") or {}).get("clicks"))


def click_key(ledger: Ledger) -> bytes:
    """The ledger's own key for link signatures (made once, kept in kv)."""
    stored = ledger.kv_get(_KV_KEY)
    if not stored:
        # made once: a process making it at the same time (a serve replica) keeps the first
        stored = ledger.kv_put_new(_KV_KEY, secrets.token_hex(32))
    return bytes.fromhex(stored)


def sign(key: bytes, edition_id: int, link: int, url: str) -> str:
    msg = f"click\0{edition_id}\0{link}\0{url}".encode()
    digest = hmac.new(key, msg, hashlib.sha256).digest()[:SIG_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def as_uri(url: str) -> str | None:
    """``url`` as it can be sent in a ``Location`` header (non-ASCII percent-encoded),
    or None when it is not an absolute http(s) URL or holds spaces or control characters."""
    uri = quote(url, safe=_URL_SAFE_CHARS)
    return uri if _SAFE_URL.fullmatch(uri) else None


@dataclass
class ClickTracker:
    """Rewrites the links of one edition; ``links`` are the originals, link n at n - 1."""

    base_url: str
    key: bytes
    edition_id: int
    links: list[str] = field(default_factory=list)
    _numbers: dict[str, int] = field(default_factory=dict)

    def tracked(self, url: str, markers: Markers) -> str | None:
        """The tracked URL for ``url``, or None when it stays as it is."""
        if (markers.nonce and markers.nonce in url) or markers.url in url or markers.email in url:
            return None  # a per-recipient gap (unsubscribe, preferences, the address)
        uri = as_uri(url)
        if uri is None or self._own_page(uri):
            return None
        n = self._numbers.get(uri)
        if n is None:
            self.links.append(uri)
            n = self._numbers[uri] = len(self.links)
        return f"{self.base_url}/c/{self.edition_id}/{n}/{sign(self.key, self.edition_id, n, uri)}"

    def _own_page(self, uri: str) -> bool:
        if not uri.lower().startswith(self.base_url.lower() + "/"):
            return False
        rest = uri[len(self.base_url) :]
        return rest.startswith(_OWN_PAGES)

    def rewrite_html(self, source: str, markers: Markers) -> str:
        def one(m: re.Match[str]) -> str:
            new = self.tracked(html.unescape(m.group(3)).strip(), markers)
            return m.group(0) if new is None else f"{m.group(1)}{m.group(2)}{new}{m.group(2)}"

        return _HREF.sub(one, source)

    def rewrite_text(self, source: str, markers: Markers) -> str:
        def one(m: re.Match[str]) -> str:
            url = m.group(0)
            tail = ""
            while url and url[-1] in _TRAILING and not (url[-1] == ")" and "(" in url):
                url, tail = url[:-1], url[-1] + tail
            new = self.tracked(url, markers)
            return m.group(0) if new is None else new + tail

        return _TEXT_URL.sub(one, source)

    def copy(self) -> ClickTracker:
        """A fresh tracker for the same edition (the numbers start again from 1)."""
        return ClickTracker(self.base_url, self.key, self.edition_id)


def tracker_for(settings: Settings, ledger: Ledger, edition_id: int) -> ClickTracker | None:
    """The tracker of edition ``edition_id`` when ``[tracking] clicks`` is on."""
    if not enabled(settings):
        return None
    from .signup import base_url

    return ClickTracker(base_url(settings), click_key(ledger), edition_id)


# --- the redirect --------------------------------------------------------------------

#: User-agent words of mail security scanners and link previewers, which fetch every
#: link of a message before (or instead of) the reader: redirected, not counted.
_SCANNERS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "urldefense",
    "safelinks",
    "forcepoint",
    "trendmicro",
    "sophos",
    "fireeye",
    "bot",
    "crawler",
    "spider",
    "preview",
    "facebookexternalhit",
    "python-requests",
    "curl/",
    "wget/",
)


def is_prefetch(request: Request) -> bool:
    """A request that is not a reader following the link."""
    if request.method != "GET":
        return True  # HEAD: a scanner checking the link
    purpose = request.headers.get("sec-purpose", "") + request.headers.get("purpose", "")
    if "prefetch" in purpose.lower() or request.headers.get("x-moz", "") == "prefetch":
        return True
    agent = request.headers.get("user-agent", "").lower()
    return not agent or any(word in agent for word in _SCANNERS)


class ClickRoutes:
    """``GET /c/<edition>/<link>/<sig>`` of `distrib serve`."""

    def __init__(self, ledger: Ledger, lock: threading.Lock):
        self.ledger = ledger
        self.lock = lock
        self.key: bytes | None = None  # read at the first click: no key made for nothing

    @staticmethod
    def match(target: str) -> dict[str, str] | None:
        from .web import target_path

        m = CLICK_PATH.fullmatch(target_path(target))
        return m.groupdict() if m else None

    def click(self, request: Request, params: dict[str, str]) -> Response:
        edition, link = int(params["edition"]), int(params["link"])
        if edition > MAX_EDITION:
            return _not_found()
        with self.lock:
            url = self.ledger.edition_link(edition, link)
            if url is not None and self.key is None:
                self.key = click_key(self.ledger)
        if url is None or self.key is None or as_uri(url) != url:
            return _not_found()
        if not hmac.compare_digest(sign(self.key, edition, link, url), params["sig"]):
            return _not_found()
        if not is_prefetch(request):
            with self.lock:
                self.ledger.count_click(edition, link)
        return Response(HTTPStatus.FOUND, "redirecting\n", headers=[("Location", url)])


def _not_found() -> Response:
    return text(HTTPStatus.NOT_FOUND, "not found\n")
