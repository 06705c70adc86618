"""Bluesky: plain XRPC over HTTP (https://docs.bsky.app/docs/api/).

* Session: ``com.atproto.server.createSession`` once, then the session (accessJwt,
  refreshJwt, did) is kept in the ledger and reused across runs, refreshed with
  ``com.atproto.server.refreshSession`` when the access token expires: logins with a
  password are rate limited per day (https://docs.bsky.app/docs/advanced-guides/rate-limits).
* Record key: each share gets a TID (the ``app.bsky.feed.post`` lexicon's key type),
  stored in the ledger before the call; a retry re-uses it, so
  ``com.atproto.repo.createRecord`` cannot make a second post.  Keys are unique per
  account by construction: the time part is the run's time, raised past the last key
  this account handed out, so fifty posts of one run get fifty keys.
* A taken key: the reference PDS answers a generic 500 ("There is already a value at
  key"), others a 400.  After any such answer, a 5xx or a dropped connection, the record
  at the key is read back (``getRecord``): if its text or link is this post's, the post
  is sent; if another post is there, the share takes the next key.  The same check
  settles a share a dead run left in flight or a 5xx left deferred.
* A refused password or session (401/403) stops the channel for the run.
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
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any, ClassVar, Literal, cast

from ..errors import ChannelUnavailable, Deferred, DeliveryError
from ..model import Facet, Outcome, Post, Snippet
from ..render.length import BLUESKY_BYTES, BLUESKY_GRAPHEMES, bluesky_length
from ..render.snippets import facets_for
from ..schema import Ctx, Invalid, Opt, k_bool, k_env_name, k_str, k_url
from .base import (
    BACKOFF,
    CARD_OPTIONS,
    DEFAULT_WAIT,
    RateLimited,
    ShareChannel,
    contains_link,
    later,
)

log = logging.getLogger("distrib.channels.bluesky")

COLLECTION = "app.bsky.feed.post"
#: Keys tried for one share before giving up (each taken by another post).
MAX_KEYS = 5
#: What ``_at_key`` says when another post holds the key.
THEIRS: Literal["theirs"] = "theirs"
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
        v.startswith("did:")
        or re.fullmatch(
            r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z][a-zA-Z0-9-]*", v
        )
    ):
        return v
    raise Invalid("a Bluesky handle such as 'news.example.org' (without '@') or a DID")


class BlueskyChannel(ShareChannel):
    network: ClassVar[str] = "bluesky"
    #: the session of this run (see :meth:`session`)
    _session: dict[str, Any] | None = None
    options: ClassVar[dict[str, Opt]] = {
        "handle": Opt(
            k_handle, None, "the account's handle, such as 'news.example.org'", required=True
        ),
        "password_env": Opt(
            k_env_name,
            None,
            "environment variable holding an app password (Settings, App passwords)",
            required=True,
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
        session: dict[str, Any] = {
            k: data[k] for k in ("accessJwt", "refreshJwt", "did") if k in data
        }
        session["handle"] = data.get("handle", self.opt("handle"))
        if self.ctx.ledger is not None:
            self.ctx.ledger.kv_put(self._kv_session, session)
        self._session = session
        return session

    def session(self, *, fresh: bool = False) -> dict[str, Any]:
        """The saved session, else a new one (one login, saved for the next runs)."""
        if not fresh:
            cached = self._session
            if cached:
                return cached
            if self.ctx.ledger is not None:
                saved = self.ctx.ledger.kv_get(self._kv_session)
                if saved and saved.get("handle") == self.opt("handle"):
                    self._session = saved
                    return cast("dict[str, Any]", saved)
        password = self.ctx.settings.secret(self.opts, "password_env")
        r = self.request(
            "POST",
            self.base + "com.atproto.server.createSession",
            json={"identifier": self.opt("handle"), "password": password},
        )
        if r.status_code != 200:
            raise self.auth_failed(
                r.status_code,
                f"login as {self.opt('handle')} was refused: check the handle and the app password in "
                f"{self.opts.get('password_env')}",
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

    def call(
        self, method: str, nsid: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        """An authenticated XRPC call; an expired access token is refreshed once."""
        for attempt in (0, 1):
            session = self.session()
            auth = dict(headers or {}) | {"Authorization": f"Bearer {session['accessJwt']}"}
            r = self.request(method, self.base + nsid, headers=auth, **kwargs)
            if (
                attempt == 0
                and r.status_code in (400, 401)
                and _error_name(r) in ("ExpiredToken", "InvalidToken")
            ):
                self._refresh()
                continue
            return r
        return r

    # --- posting ----------------------------------------------------------------------

    def record_key(self, key: str) -> str:
        """The TID of this share: fixed at the first attempt, stored before the call."""
        ledger = self.ctx.ledger
        if ledger is not None:
            saved = ledger.kv_get(self._kv_rkey(key))
            if saved:
                return str(saved)
        return self.next_record_key(key)

    def next_record_key(self, key: str) -> str:
        """A new TID for this share, after every key this account handed out.

        The time part is the run's time in microseconds, or one more than the last key's
        if that is later; the clock id is the channel's.  Unique per account by
        construction, and stored in the ledger before the call: every retry of the share
        uses the same key.
        """
        ledger = self.ctx.ledger
        micros = int(self.ctx.now.timestamp() * 1_000_000)
        clock_id = int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:2], "big") & 0x3FF
        if ledger is not None:
            last = ledger.kv_get(f"bluesky:{self.name}:rkey-last")
            if isinstance(last, int) and last >= micros:
                micros = last + 1
        tid = make_tid(micros, clock_id)
        if ledger is not None and not self.ctx.dry_run:
            ledger.kv_put(f"bluesky:{self.name}:rkey-last", micros)
            ledger.kv_put(self._kv_rkey(key), tid)
        return tid

    def _kv_rkey(self, key: str) -> str:
        return f"bluesky:{self.name}:rkey:{key}"

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
        language = self.opt("language") or (self.ctx.settings.data.get("site") or {}).get(
            "language"
        )
        if language:
            record["langs"] = [str(language)]
        if self.opt("card", True):
            record["embed"] = self._card(snippet, post)
        for _ in range(MAX_KEYS):
            outcome = self._create(session["did"], rkey, record, snippet)
            if outcome is not None:
                return outcome
            log.info(
                "channel %s: record key %s holds another post; %s takes the next key",
                self.name,
                rkey,
                post.key,
            )
            rkey = self.next_record_key(key)
        raise DeliveryError(
            f"channel {self.name}: {MAX_KEYS} record keys in a row held other posts; post {post.key} not sent"
        )

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
            r = self.request(
                "GET", self.base + "com.atproto.identity.resolveHandle", params={"handle": handle}
            )
            did = None
            if r.status_code == 200:
                try:
                    did = r.json().get("did")
                except ValueError:
                    did = None
            if not (isinstance(did, str) and did.startswith("did:")):
                log.info(
                    "channel %s: @%s does not resolve to a DID; left as plain text",
                    self.name,
                    handle,
                )
                did = None
            cache[handle] = did
        return cache[handle]

    def _create(
        self, did: str, rkey: str, record: dict[str, Any], snippet: Snippet
    ) -> Outcome | None:
        """Create the record at ``rkey``: its outcome, or None when another post holds the key."""
        tries = self.retries + 1
        for attempt in range(1, tries + 1):
            try:
                r = self.call(
                    "POST",
                    "com.atproto.repo.createRecord",
                    retries=0,
                    json={"repo": did, "collection": COLLECTION, "rkey": rkey, "record": record},
                )
            except (RateLimited, ChannelUnavailable):
                raise  # nothing was written: a 429, or credentials refused
            except Deferred as e:
                # The connection dropped: the write may have landed.
                found = self._at_key(did, rkey, snippet)
                if found == THEIRS:
                    return None
                if isinstance(found, Outcome):
                    return found
                if attempt < tries:
                    time.sleep(BACKOFF * attempt)
                    continue
                raise e
            if r.status_code == 200:
                return Outcome.sent(remote_id=str(r.json().get("uri", "")))
            taken = r.status_code == 400 and "exist" in _error_text(r).lower()
            if r.status_code >= 500 or taken:
                # A taken key (the reference PDS says 500, others 400), or a 5xx that may
                # have written: what is at the key decides.
                found = self._at_key(did, rkey, snippet)
                if found == THEIRS:
                    return None
                if isinstance(found, Outcome):
                    return found
                if r.status_code >= 500 and attempt < tries:
                    time.sleep(BACKOFF * attempt)
                    continue
                if r.status_code >= 500:
                    raise Deferred(
                        f"channel {self.name}: {self.base.split('/')[2]} answered {r.status_code} {tries} times; "
                        f"{later(DEFAULT_WAIT)}",
                        retry_after=DEFAULT_WAIT,
                    )
            if r.status_code in (401, 403):
                raise self.auth_failed(
                    r.status_code,
                    f"check the handle and the app password in {self.opts.get('password_env')}",
                )
            raise self.fail(r, "posting")
        raise AssertionError("unreachable")

    def _at_key(self, did: str, rkey: str, snippet: Snippet) -> Outcome | Literal["theirs"] | None:
        """What is at ``rkey``: this post (its text or its link) as a sent outcome,
        ``THEIRS`` (another post), or None (nothing)."""
        r = self.call(
            "GET",
            "com.atproto.repo.getRecord",
            params={"repo": did, "collection": COLLECTION, "rkey": rkey},
        )
        if r.status_code != 200:
            if r.status_code in (400, 404) and _error_name(r) in (
                "RecordNotFound",
                "InvalidRequest",
                "",
            ):
                return None
            raise self.fail(r, "reading a record back")
        data = r.json()
        value = data.get("value") or {}
        if _is_this_post(value, snippet):
            return Outcome.sent(remote_id=str(data.get("uri", "")))
        return THEIRS

    def reconcile(self, snippet: Snippet, post: Post, key: str) -> Outcome | None:
        session = self.session()
        found = self._at_key(session["did"], self.record_key(key), snippet)
        if found == THEIRS:
            self.next_record_key(key)  # the re-post must not land on another post's key
            return None
        return found if isinstance(found, Outcome) else None

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
                log.warning(
                    "channel %s: image over 1,000,000 bytes; card without thumbnail", self.name
                )
                return None
            data, mime = shrunk, "image/jpeg"
        r = self.call(
            "POST", "com.atproto.repo.uploadBlob", content=data, headers={"Content-Type": mime}
        )
        if r.status_code != 200:
            log.warning(
                "channel %s: thumbnail upload answered %s; card without it",
                self.name,
                r.status_code,
            )
            return None
        return cast("dict[str, Any] | None", r.json().get("blob"))

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
        img = Image.open(io.BytesIO(data)).convert("RGB")
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
        return str(r.text)


def _is_this_post(value: Any, snippet: Snippet) -> bool:
    """Whether a record read back is this share: the same text, or this post's link (in
    the text, a link facet or the link card)."""
    if not isinstance(value, dict):
        return False
    if value.get("text") == snippet.text:
        return True
    link = snippet.link
    if not link:
        return False
    if contains_link(str(value.get("text", "")), link):
        return True
    embed = value.get("embed") or {}
    if isinstance(embed, dict) and (embed.get("external") or {}).get("uri") == link:
        return True
    for facet in value.get("facets") or ():
        for feature in (facet or {}).get("features") or ():
            if isinstance(feature, dict) and feature.get("uri") == link:
                return True
    return False
