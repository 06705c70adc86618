"""Bluesky: plain XRPC over HTTP (https://docs.bsky.app/docs/api/).

* Session: ``com.atproto.server.createSession`` once, then the session (accessJwt,
  refreshJwt, did) is kept in the ledger and reused across runs, refreshed with
  ``com.atproto.server.refreshSession`` when the access token expires: logins with a
  password are rate limited per day (https://docs.bsky.app/docs/advanced-guides/rate-limits).
* Record key: each share gets a TID (the ``app.bsky.feed.post`` lexicon's key type)
  built from the share key and the time of the first attempt, stored in the ledger
  before the call; a retry re-uses it, so ``com.atproto.repo.createRecord`` cannot make a
  second post: the PDS refuses a record key that exists, and we then read it back.
* Text: at most 300 graphemes and 3000 UTF-8 bytes; links, hashtags, cashtags and
  mentions as facets with UTF-8 byte offsets, found as ``@atproto/api``'s
  ``RichText.detectFacets`` finds them
  (https://docs.bsky.app/docs/advanced-guides/post-richtext); a mentioned handle is
  resolved to a DID with ``com.atproto.identity.resolveHandle`` on the configured
  service, and one that does not resolve stays plain text.
* Link card: ``app.bsky.embed.external`` with title, description and a thumbnail
  uploaded with ``com.atproto.repo.uploadBlob`` (at most 1,000,000 bytes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Callable
from datetime import UTC
from typing import Any, ClassVar

from ..config import Ctx, Invalid, Opt, k_bool, k_env_name, k_str, k_url
from ..errors import DeliveryError
from ..model import Facet, Outcome, Post, Snippet
from ..render.length import BLUESKY_BYTES, BLUESKY_GRAPHEMES, bluesky_length
from ..render.snippets import facets_for
from .base import CARD_OPTIONS, ShareChannel

log = logging.getLogger("distrib.channels.bluesky")

COLLECTION = "app.bsky.feed.post"
MAX_BLOB = 1_000_000
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"  # base32-sortable


def make_tid(micros: int, clock_id: int) -> str:
    """A TID (https://atproto.com/specs/tid): 64 bits, top bit 0, then 53 bits of
    microseconds since the epoch and 10 bits of clock id, in base32-sortable, 13 chars."""
    value = ((micros & ((1 << 53) - 1)) << 10) | (clock_id & 0x3FF)
    out = []
    for _ in range(13):
        out.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def bluesky_fit(text: str) -> int:
    """One number for both limits: graphemes, or bytes / 10 if that is more (300 ~ 3000)."""
    graphemes, size = bluesky_length(text)
    return max(graphemes, -(-size * BLUESKY_GRAPHEMES // BLUESKY_BYTES))


def facet_json(facet: Facet) -> dict[str, Any]:
    feature: dict[str, Any]
    if facet.kind == "link":
        feature = {"$type": "app.bsky.richtext.facet#link", "uri": facet.value}
    elif facet.kind in ("tag", "cashtag"):
        feature = {"$type": "app.bsky.richtext.facet#tag", "tag": facet.value}
    else:
        feature = {"$type": "app.bsky.richtext.facet#mention", "did": facet.value}
    return {
        "index": {"byteStart": facet.byte_start, "byteEnd": facet.byte_end},
        "features": [feature],
    }


def k_handle(v: Any, ctx: Ctx) -> str:
    """A handle (https://atproto.com/specs/handle) or a DID, without a leading '@'."""
    if isinstance(v, str) and (
        v.startswith("did:") or re.fullmatch(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z][a-zA-Z0-9-]*", v)
    ):
        return v
    raise Invalid("a Bluesky handle such as 'news.example.org' (without '@') or a DID")


class BlueskyChannel(ShareChannel):
    network: ClassVar[str] = "bluesky"
    options: ClassVar[dict[str, Opt]] = {
        "handle": Opt(k_handle, None, "the account's handle, such as 'news.example.org'", required=True),
        "password_env": Opt(
            k_env_name, None, "environment variable holding an app password (Settings, App passwords)", required=True
        ),
        "service": Opt(k_url, "https://bsky.social", "the account's PDS or entryway"),
        "language": Opt(k_str, None, "BCP 47 language of the posts; default: [site] language"),
        "card": Opt(k_bool, True, "attach a link card (title, description, thumbnail)"),
        **CARD_OPTIONS,
    }

    @property
    def base(self) -> str:
        return str(self.opt("service")).rstrip("/") + "/xrpc/"

    def counter(self) -> Callable[[str], int]:
        return bluesky_fit

    def limit(self) -> int:
        return BLUESKY_GRAPHEMES

    def compose(self, post: Post) -> Snippet:

        snippet = super().compose(post)
        return dataclasses.replace(snippet, facets=facets_for(snippet.text))

    # --- session ----------------------------------------------------------------------

    @property
    def _kv_session(self) -> str:
        return f"bluesky:{self.name}:session"

    def _save(self, data: dict[str, Any]) -> dict[str, Any]:
        session = {k: data[k] for k in ("accessJwt", "refreshJwt", "did") if k in data}
        session["handle"] = data.get("handle", self.opt("handle"))
        if self.ctx.ledger is not None:
            self.ctx.ledger.kv_put(self._kv_session, session)
        self._session = session
        return session

    def session(self, *, fresh: bool = False) -> dict[str, Any]:
        """The saved session, else a new one (one login, saved for the next runs)."""
        if not fresh:
            cached = getattr(self, "_session", None)
            if cached:
                return cached
            if self.ctx.ledger is not None:
                saved = self.ctx.ledger.kv_get(self._kv_session)
                if saved and saved.get("handle") == self.opt("handle"):
                    self._session = saved
                    return saved
        password = self.ctx.settings.secret(self.opts, "password_env")
        r = self.request(
            "POST",
            self.base + "com.atproto.server.createSession",
            json={"identifier": self.opt("handle"), "password": password},
        )
        if r.status_code != 200:
            raise DeliveryError(
                f"channel {self.name}: login as {self.opt('handle')} refused ({r.status_code}); "
                f"check the handle and the app password in {self.opts.get('password_env')}"
            )
        return self._save(r.json())

    def _refresh(self) -> dict[str, Any]:
        session = self.session()
        r = self.request(
            "POST",
            self.base + "com.atproto.server.refreshSession",
            headers={"Authorization": f"Bearer {session.get('refreshJwt', '')}"},
        )
        if r.status_code == 200:
            return self._save(r.json())
        return self.session(fresh=True)

    def call(self, method: str, nsid: str, *, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """An authenticated XRPC call; an expired access token is refreshed once."""
        for attempt in (0, 1):
            session = self.session()
            auth = dict(headers or {}) | {"Authorization": f"Bearer {session['accessJwt']}"}
            r = self.request(method, self.base + nsid, headers=auth, **kwargs)
            if attempt == 0 and r.status_code in (400, 401) and _error_name(r) in ("ExpiredToken", "InvalidToken"):
                self._refresh()
                continue
            return r
        return r

    # --- posting ----------------------------------------------------------------------

    def record_key(self, key: str) -> str:
        """The TID of this share: fixed at the first attempt, stored before the call."""
        ledger = self.ctx.ledger
        kv = f"bluesky:{self.name}:rkey:{key}"
        if ledger is not None:
            saved = ledger.kv_get(kv)
            if saved:
                return str(saved)
        clock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:2], "big") & 0x3FF
        micros = int(self.ctx.now.timestamp() * 1_000_000)
        tid = make_tid(micros, clock_id)
        if ledger is not None:
            ledger.kv_put(kv, tid)
        return tid

    def publish(self, snippet: Snippet, post: Post, key: str) -> Outcome:
        graphemes, size = bluesky_length(snippet.text)
        if graphemes > BLUESKY_GRAPHEMES or size > BLUESKY_BYTES:
            raise DeliveryError(
                f"channel {self.name}: post {post.key} is {graphemes} graphemes / {size} bytes, "
                f"over Bluesky's 300 / 3000; use a shorter template"
            )
        rkey = self.record_key(key)
        session = self.session()
        record: dict[str, Any] = {
            "$type": COLLECTION,
            "text": snippet.text,
            "createdAt": self.ctx.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        facets = self.resolve_mentions(facets_for(snippet.text))
        if facets:
            record["facets"] = [facet_json(f) for f in facets]
        language = self.opt("language") or (self.ctx.settings.data.get("site") or {}).get("language")
        if language:
            record["langs"] = [str(language)]
        if self.opt("card", True):
            record["embed"] = self._card(snippet, post)
        r = self.call(
            "POST",
            "com.atproto.repo.createRecord",
            json={"repo": session["did"], "collection": COLLECTION, "rkey": rkey, "record": record},
        )
        if r.status_code == 200:
            return Outcome.sent(remote_id=str(r.json().get("uri", "")))
        if r.status_code == 400 and "exist" in _error_text(r).lower():
            # The record key is taken: a dead run's post went through.
            found = self._existing(session["did"], rkey)
            if found is not None:
                return found
        raise self.fail(r, "posting")

    def resolve_mentions(self, facets: tuple[Facet, ...]) -> list[Facet]:
        """Mention facets with the handle replaced by its DID; an unresolvable handle
        (the PDS answers ``com.atproto.identity.resolveHandle`` with an error) is left
        as plain text, as the reference client does."""
        out = []
        for facet in facets:
            if facet.kind == "mention":
                did = self._did_of(facet.value)
                if did is None:
                    continue
                facet = dataclasses.replace(facet, value=did)
            out.append(facet)
        return out

    def _did_of(self, handle: str) -> str | None:
        cache: dict[str, str | None] = self.__dict__.setdefault("_handles", {})
        if handle not in cache:
            r = self.request("GET", self.base + "com.atproto.identity.resolveHandle", params={"handle": handle})
            did = None
            if r.status_code == 200:
                try:
                    did = r.json().get("did")
                except ValueError:
                    did = None
            if not (isinstance(did, str) and did.startswith("did:")):
                log.info("channel %s: @%s does not resolve to a DID; left as plain text", self.name, handle)
                did = None
            cache[handle] = did
        return cache[handle]

    def _existing(self, did: str, rkey: str) -> Outcome | None:
        r = self.call(
            "GET", "com.atproto.repo.getRecord", params={"repo": did, "collection": COLLECTION, "rkey": rkey}
        )
        if r.status_code == 200:
            return Outcome.sent(remote_id=str(r.json().get("uri", "")))
        return None

    def reconcile(self, snippet: Snippet, post: Post, key: str) -> Outcome | None:
        session = self.session()
        return self._existing(session["did"], self.record_key(key))

    def _card(self, snippet: Snippet, post: Post) -> dict[str, Any]:
        external: dict[str, Any] = {
            "uri": snippet.link,
            "title": post.title[:300],
            "description": " ".join(post.summary.split())[:1000],
        }
        image = self.image_for(snippet, post, 20 * MAX_BLOB)
        if image is not None:
            thumb = self._thumb(image)
            if thumb is not None:
                external["thumb"] = thumb
        return {"$type": "app.bsky.embed.external", "external": external}

    def _thumb(self, image: tuple[bytes, str, str]) -> dict[str, Any] | None:
        data, mime, _alt = image
        if len(data) > MAX_BLOB:
            shrunk = shrink_image(data, MAX_BLOB)
            if shrunk is None:
                log.warning("channel %s: image over 1,000,000 bytes; card without thumbnail", self.name)
                return None
            data, mime = shrunk, "image/jpeg"
        r = self.call("POST", "com.atproto.repo.uploadBlob", content=data, headers={"Content-Type": mime})
        if r.status_code != 200:
            log.warning("channel %s: thumbnail upload answered %s; card without it", self.name, r.status_code)
            return None
        return r.json().get("blob")

    def describe(self) -> str:
        return f"as {self.opt('handle')}"


def shrink_image(data: bytes, max_bytes: int) -> bytes | None:
    """Re-encode an image as JPEG under ``max_bytes`` (Pillow, the "card" extra), or None."""
    try:
        import io

        from PIL import Image
    except ImportError:
        return None
    try:
        img = Image.open(io.BytesIO(data))
        img = img.convert("RGB")
        img.thumbnail((1200, 1200))
        for quality in (85, 75, 60, 45):
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=quality, optimize=True)
            if buf.tell() <= max_bytes:
                return buf.getvalue()
    except (OSError, ValueError):
        return None
    return None


def _error_name(r: Any) -> str:
    try:
        return str(r.json().get("error", ""))
    except ValueError:
        return ""


def _error_text(r: Any) -> str:
    try:
        data = r.json()
        return f"{data.get('error', '')} {data.get('message', '')}"
    except ValueError:
        return r.text
