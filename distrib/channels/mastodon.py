"""Mastodon (and compatible servers): plain HTTP against the documented REST API.

* Posting: ``POST /api/v1/statuses`` with an ``Idempotency-Key`` header derived from the
  share key (post, account), so a re-post after a kill is recognised by the server
  (https://docs.joinmastodon.org/methods/statuses/#create).
* Images: ``POST /api/v2/media`` with the alt text as ``description``
  (https://docs.joinmastodon.org/methods/media/#v2).
* Length: the instance's own limit, ``configuration.statuses.max_characters`` and
  ``characters_reserved_per_url`` from ``GET /api/v2/instance``
  (https://docs.joinmastodon.org/methods/instance/#v2), kept in the ledger for a day per
  instance (two accounts on one server share it).  A 422 saying the text is too long
  means the instance lowered its limit: the limits are fetched again, the post is
  recomposed, and sent once more.
* A 401/403 stops the channel for the run (its posts wait) and names the token to renew.
* Rate limits: a 429 defers the channel to a later run with the ``X-RateLimit-Reset``
  time (https://docs.joinmastodon.org/api/rate-limits/); nothing sleeps.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from ..model import Outcome, Post, Snippet
from ..render.length import mastodon_length
from ..schema import Opt, choice, k_bool, k_env_name, k_positive, k_str, k_url
from .base import CARD_OPTIONS, ShareChannel, contains_link

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("distrib.channels.mastodon")

DEFAULT_LIMIT = 500
DEFAULT_URL_LENGTH = 23
LIMITS_MAX_AGE = timedelta(days=1)
MAX_IMAGE_BYTES = 16 * 1024 * 1024  # Mastodon's default image_size_limit


class MastodonChannel(ShareChannel):
    network: ClassVar[str] = "mastodon"
    #: (max_characters, characters_reserved_per_url), once read in this run
    _limits: tuple[int, int] | None = None
    options: ClassVar[dict[str, Opt]] = {
        "instance": Opt(
            k_url, None, "the server's URL, such as 'https://mastodon.social'", required=True
        ),
        "token_env": Opt(
            k_env_name,
            None,
            "environment variable holding an access token with the write:statuses and write:media scopes",
            required=True,
        ),
        "visibility": Opt(
            choice("public", "unlisted", "private", "direct"), "public", "who sees the posts"
        ),
        "language": Opt(k_str, None, "ISO 639 language of the posts; default: [site] language"),
        "images": Opt(k_bool, True, "attach the post's image, with its alt text"),
        "limit": Opt(
            k_positive, None, "characters per post; default: what the instance says (500)"
        ),
        **CARD_OPTIONS,
    }

    @property
    def base(self) -> str:
        return str(self.opt("instance")).rstrip("/")

    # --- length -----------------------------------------------------------------------

    def instance_limits(self, *, fresh: bool = False) -> tuple[int, int]:
        """(max_characters, characters_reserved_per_url) of the instance, cached a day.

        The cache is the instance's (its URL), not the channel's: an instance that
        changes its limit changes it for every account there.
        """
        cached = self._limits
        if cached and not fresh:
            return cached
        key = f"mastodon:{self.base.lower()}:limits"
        ledger = self.ctx.ledger
        value = (
            ledger.kv_get(key, max_age=LIMITS_MAX_AGE) if ledger is not None and not fresh else None
        )
        if not value:
            value = self._fetch_limits()
            if value and ledger is not None and not self.ctx.dry_run:
                ledger.kv_put(key, value)
        limits = (
            int((value or {}).get("max_characters") or DEFAULT_LIMIT),
            int((value or {}).get("characters_reserved_per_url") or DEFAULT_URL_LENGTH),
        )
        self._limits = limits
        return limits

    def _fetch_limits(self) -> dict[str, int] | None:
        from ..errors import Deferred

        try:
            r = self.request("GET", f"{self.base}/api/v2/instance", retries=0)
        except Deferred as e:
            # The Deferred message already names the channel.
            log.warning("%s; assuming %d characters", e, DEFAULT_LIMIT)
            return None
        if r.status_code != 200:
            log.warning(
                "channel %s: %s/api/v2/instance answered %s; assuming %d characters",
                self.name,
                self.base,
                r.status_code,
                DEFAULT_LIMIT,
            )
            return None
        try:
            statuses = r.json()["configuration"]["statuses"]
            return {
                "max_characters": int(statuses["max_characters"]),
                "characters_reserved_per_url": int(statuses["characters_reserved_per_url"]),
            }
        except (ValueError, KeyError, TypeError):
            log.warning(
                "channel %s: unexpected /api/v2/instance answer; assuming %d characters",
                self.name,
                DEFAULT_LIMIT,
            )
            return None

    def counter(self) -> Callable[[str], int]:
        _, url_length = self.instance_limits()
        return lambda text: mastodon_length(text, url_length)

    def limit(self) -> int:
        return int(self.opt("limit") or self.instance_limits()[0])

    # --- posting ----------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        token = self.ctx.settings.secret(self.opts, "token_env")
        return {"Authorization": f"Bearer {token}"}

    def publish(self, snippet: Snippet, post: Post, key: str) -> Outcome:
        headers = self._headers()
        body: dict[str, Any] = {
            "status": snippet.text,
            "visibility": self.opt("visibility", "public"),
        }
        language = self.opt("language") or (self.ctx.settings.data.get("site") or {}).get(
            "language"
        )
        if language:
            body["language"] = str(language).split("-")[0]
        if self.opt("images", True):
            image = self.image_for(snippet, post, MAX_IMAGE_BYTES)
            media_id = self._upload(image, headers) if image is not None else None
            if media_id:
                body["media_ids"] = [media_id]
        r = self._post_status(body, headers, key)
        if r.status_code == 422 and _too_long(r):
            # The instance lowered its limit since we cached it: ask again, recompose
            # with the new limit, and try once more (a 422 posted nothing).
            before = self.instance_limits()
            after = self.instance_limits(fresh=True)
            if after != before and not self.opt("limit"):
                shorter = self.compose(post)
                log.warning(
                    "channel %s: %s now allows %d characters (was %d); post %s recomposed",
                    self.name,
                    self.base,
                    after[0],
                    before[0],
                    post.key,
                )
                self.set_text(post, shorter.text)
                r = self._post_status(body | {"status": shorter.text}, headers, key)
        if r.status_code == 200:
            data = r.json()
            return Outcome.sent(remote_id=str(data.get("url") or data.get("uri") or data.get("id")))
        if r.status_code in (401, 403):
            raise self.auth_failed(
                r.status_code,
                f"create a token on {self.base} with write:statuses and write:media and export it in "
                f"{self.opts.get('token_env')}",
            )
        raise self.fail(r, "posting")

    def _post_status(
        self, body: dict[str, Any], headers: dict[str, str], key: str
    ) -> httpx.Response:
        return self.request(
            "POST",
            f"{self.base}/api/v1/statuses",
            json=body,
            headers=headers | {"Idempotency-Key": self.idempotency_key(key)},
        )

    def set_text(self, post: Post, text: str) -> None:
        """Record a recomposed text as the share's text (what a retry re-sends)."""
        if self.ctx.ledger is not None:
            self.ctx.ledger.set_share_text(post.key, self.name, text)

    def idempotency_key(self, key: str) -> str:
        # The share key already names (post, channel); the account's name keeps two
        # channels on one server apart even if someone copies a ledger.
        return f"distrib-{self.name}-{key}"

    def _upload(self, image: tuple[bytes, str, str], headers: dict[str, str]) -> str | None:
        data, mime, alt = image
        filename = "image." + (mime.split("/")[-1] or "jpg")
        r = self.request(
            "POST",
            f"{self.base}/api/v2/media",
            headers=headers,
            files={"file": (filename, data, mime)},
            data={"description": alt[:1500]},
        )
        if r.status_code not in (200, 202):
            log.warning(
                "channel %s: image upload answered %s; posting without it", self.name, r.status_code
            )
            return None
        media = r.json()
        media_id = str(media["id"])
        if r.status_code == 202:
            # Still processing: a status cannot attach it until it is done.  Images take
            # well under a second; wait briefly, never long (cron).
            for attempt in range(4):
                time.sleep(0.25 * (attempt + 1))
                check = self.request("GET", f"{self.base}/api/v1/media/{media_id}", headers=headers)
                if check.status_code == 200:
                    return media_id
            log.warning("channel %s: image still processing; posting without it", self.name)
            return None
        return media_id

    def reconcile(self, snippet: Snippet, post: Post, key: str) -> Outcome | None:
        """Look for the link among the account's latest statuses."""
        headers = self._headers()
        me = self.request("GET", f"{self.base}/api/v1/accounts/verify_credentials", headers=headers)
        if me.status_code != 200:
            return None
        account_id = me.json().get("id")
        r = self.request(
            "GET",
            f"{self.base}/api/v1/accounts/{account_id}/statuses",
            params={"limit": 40, "exclude_replies": "true", "exclude_reblogs": "true"},
            headers=headers,
        )
        if r.status_code != 200:
            return None
        for status in r.json():
            content = html.unescape(str(status.get("content", "")))
            if contains_link(content, snippet.link):
                return Outcome.sent(remote_id=str(status.get("url") or status.get("id")))
        return None

    def describe(self) -> str:
        return f"on {self.base}"


def _too_long(r: httpx.Response) -> bool:
    """Mastodon's 422 for a status over the limit: "Validation failed: Text character
    limit of 500 exceeded" (StatusLengthValidator)."""
    from .base import api_error_text

    text = api_error_text(r, 400).lower()
    return "character limit" in text or "too long" in text
