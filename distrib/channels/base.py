"""What every built-in channel shares: composing with templates, and careful HTTP.

:class:`ShareChannel` turns a channel's counter and limit into snippets (render/snippets.py).
:meth:`ShareChannel.request` is the one way channels call a network: bounded retries of
5xx and connection errors, a 429 turned into :class:`~distrib.errors.Deferred` with the
time the network asked for, never a sleep longer than a second (cron must not hang).
Credentials never appear in an error message: errors name the host and the status only.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from ..adapters import Channel
from ..errors import ChannelUnavailable, Deferred, DeliveryError
from ..model import Post, Snippet
from ..schema import Opt, k_bool, k_path

if TYPE_CHECKING:
    import httpx
    import jinja2

log = logging.getLogger("distrib.channels")

USER_AGENT = "distrib (+https://github.com/distrib/distrib)"
#: Retries of a 5xx or a dropped connection, after the first try.  Only requests the
#: network de-duplicates (idempotency key, record key) or that post nothing are retried
#: by default; a channel can lower it.
RETRIES = 2
BACKOFF = 0.25  # seconds, times the attempt number: short, cron must not hang
#: How long a share waits after a 5xx or an unreachable host when the network did not
#: say (the ledger's default for a deferral without a time).
DEFAULT_WAIT = 900


class RateLimited(Deferred):
    """A 429: the network asked us to wait; nothing was posted."""


class AuthFailed(ChannelUnavailable):
    """A 401/403: the credentials were refused.  The channel stops for this run, its
    posts stay owed (deferred, not failed), and the message names the secret to renew;
    the next run resumes once it is fixed."""


def later(wait: float | None) -> str:
    """How a deferral's message says when the share is tried again."""
    seconds = DEFAULT_WAIT if wait is None else max(0.0, wait)
    if seconds < 90:
        return "retried by the next run"
    minutes = round(seconds / 60)
    span = f"{minutes} minutes" if minutes < 120 else f"{round(minutes / 60)} hours"
    return f"deferred for {span}: the first run after that retries it"


#: Options of the channels that attach images.
CARD_OPTIONS: dict[str, Opt] = {
    "share_card": Opt(
        k_bool,
        False,
        "when a post has no image, attach a generated 1200x630 card (needs distrib[card])",
    ),
    "card_font": Opt(
        k_path, None, "a .ttf/.otf font for cards whose title the bundled DejaVu Sans cannot draw"
    ),
}


class ShareChannel(Channel):
    """A channel that composes snippets from the share templates."""

    #: The network's name: utm_source and the default template name.
    network: ClassVar[str] = ""
    retries: ClassVar[int] = RETRIES

    def __init__(self, name: str, options: Any, ctx: Any):
        super().__init__(name, options, ctx)
        self._env: jinja2.Environment | None = None
        self._templates: list[str] | None = None
        self._client: httpx.Client | None = None

    # --- composing ------------------------------------------------------------------

    def counter(self) -> Callable[[str], int]:
        raise NotImplementedError

    def limit(self) -> int:
        raise NotImplementedError

    def opt(self, key: str, default: Any = None) -> Any:
        value = self.opts.get(key, default) if hasattr(self.opts, "get") else default
        return default if value is None else value

    @property
    def env(self) -> jinja2.Environment:
        if self._env is None:
            from ..render.snippets import share_env

            self._env = share_env(self.ctx.settings)
        return self._env

    def template_names(self) -> list[str]:
        """The configured template's variants; by default ``share/<network>.j2`` if it
        exists, else ``share/default.j2``."""
        if self._templates is None:
            import jinja2

            from ..render.snippets import template_variants

            name = self.opt("template")
            if not name:
                name = "default"
                if self.network:
                    try:
                        self.env.get_template(f"share/{self.network}.j2")
                        name = self.network
                    except jinja2.TemplateNotFound:
                        pass
            self._templates = template_variants(self.env, name)
        return self._templates

    def utm(self) -> dict[str, str] | None:
        if not self.opt("utm", True):
            return None
        return {"source": self.network or self.name, "medium": "social", "campaign": "distrib"}

    def compose(self, post: Post) -> Snippet:
        from ..render.snippets import compose

        site = self.ctx.settings.data.get("site") or {}
        return compose(
            post,
            channel=self.name,
            template_names=self.template_names(),
            env=self.env,
            counter=self.counter(),
            limit=self.limit(),
            hashtags=self.opt("hashtags", 3),
            utm=self.utm(),
            link_url=post.url,
            extra_context={"site": site, "network": self.network},
        )

    # --- HTTP -----------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            # httpx logs every request line at INFO, and webhook URLs and Telegram's
            # API paths carry the secret itself: keep those lines out of -v output.
            logging.getLogger("httpx").setLevel(
                max(logging.WARNING, logging.getLogger("httpx").level)
            )
            self._client = httpx.Client(
                timeout=httpx.Timeout(30.0, connect=10.0),
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def request(
        self, method: str, url: str, *, retries: int | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One API call: 5xx and dropped connections retried, 429 -> Deferred."""
        import httpx

        host = urlsplit(url).netloc
        tries = (self.retries if retries is None else retries) + 1
        for attempt in range(1, tries + 1):
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx.TransportError as e:
                if attempt < tries:
                    time.sleep(BACKOFF * attempt)
                    continue
                raise Deferred(
                    f"channel {self.name}: {host} unreachable ({type(e).__name__}); {later(DEFAULT_WAIT)}",
                    retry_after=DEFAULT_WAIT,
                ) from None
            if response.status_code == 429:
                wait = retry_after(response.headers)
                if wait is None:
                    wait = _body_retry_after(response)
                raise RateLimited(
                    f"channel {self.name}: rate limited by {host} (429); {later(wait)}",
                    retry_after=wait,
                )
            if response.status_code >= 500:
                if attempt < tries:
                    time.sleep(BACKOFF * attempt)
                    continue
                wait = retry_after(response.headers)
                wait = DEFAULT_WAIT if wait is None else wait
                raise Deferred(
                    f"channel {self.name}: {host} answered {response.status_code} "
                    f"{tries} time{'s' if tries != 1 else ''}; {later(wait)}",
                    retry_after=wait,
                )
            return response
        raise AssertionError("unreachable")

    def auth_failed(self, status: int, renew: str, detail: str = "") -> AuthFailed:
        """A refused credential: stop this channel for the run, say what to renew."""
        detail = " ".join(detail.split())[:80]
        return AuthFailed(
            f"channel {self.name}: the credentials were refused ({status}{' ' + detail if detail else ''}); {renew}. "
            f"Its posts wait for the next run",
            retry_after=1,
        )

    def fail(self, response: httpx.Response, what: str) -> DeliveryError:
        """A one-line DeliveryError for an unexpected answer (no secrets, short body)."""
        host = urlsplit(str(response.request.url)).netloc
        detail = api_error_text(response)
        return DeliveryError(
            f"channel {self.name}: {what} failed: {host} answered {response.status_code}"
            + (f" ({detail})" if detail else "")
        )

    def image_for(
        self, snippet: Snippet, post: Post, max_bytes: int
    ) -> tuple[bytes, str, str] | None:
        """(bytes, media type, alt text) to attach: the post's image, else its share
        card when ``share_card`` is on, else None."""
        if snippet.image is not None:
            got = self.fetch_image(snippet.image.url, max_bytes)
            if got is not None:
                return got[0], got[1], snippet.image.alt or post.title
            return None
        if not self.opt("share_card", False):
            return None
        from ..render.card import CardError, make_card

        site = (self.ctx.settings.data.get("site") or {}).get("name", "")
        try:
            png = make_card(post, site, font=self.opt("card_font"), when=self.ctx.now)
        except CardError as e:
            log.warning("channel %s: no share card for %s: %s", self.name, post.key, e)
            return None
        if len(png) > max_bytes:
            return None
        return png, "image/png", post.title

    def fetch_image(self, url: str, max_bytes: int) -> tuple[bytes, str] | None:
        """The post's image (bytes, media type), or None if it cannot be used.

        A missing image never stops a share: the post goes out without it.
        """
        import httpx

        from ..http import ACCEPT_ENCODING, EncodingRefused, decoded_chunks

        if not url.startswith(("http://", "https://")):
            return None
        try:
            with self.client.stream(
                "GET", url, follow_redirects=True, headers={"Accept-Encoding": ACCEPT_ENCODING}
            ) as r:
                if r.status_code != 200:
                    log.warning(
                        "channel %s: image %s answered %s; posting without it",
                        self.name,
                        url,
                        r.status_code,
                    )
                    return None
                mime = r.headers.get("content-type", "").split(";")[0].strip().lower()
                if not mime.startswith("image/"):
                    log.warning(
                        "channel %s: %s is not an image (%s); posting without it",
                        self.name,
                        url,
                        mime,
                    )
                    return None
                # Decoded a bounded piece at a time: a compressed "image" stops at the cap.
                pieces: list[bytes] = []
                size = 0
                for chunk in decoded_chunks(r):
                    pieces.append(chunk)
                    size += len(chunk)
                    if size > max_bytes:
                        log.warning(
                            "channel %s: image %s is over %d bytes; posting without it",
                            self.name,
                            url,
                            max_bytes,
                        )
                        return None
                return b"".join(pieces), mime
        except EncodingRefused as e:
            log.warning(
                "channel %s: image %s came in Content-Encoding %r, not asked for; posting without it",
                self.name,
                url,
                e.codings[:60],
            )
            return None
        except httpx.HTTPError as e:
            log.warning(
                "channel %s: image %s unreachable (%s); posting without it",
                self.name,
                url,
                type(e).__name__,
            )
            return None


def contains_link(text: str, link: str) -> bool:
    """Whether ``text`` holds ``link`` as a whole URL: ".../posts/1" is not found in
    ".../posts/10" (a record or status of another post must not pass for this one)."""
    if not link:
        return False
    import re

    return (
        re.search(re.escape(link) + r"(?![A-Za-z0-9\-._~%/?#\[\]@!$&'()*+,;=])", text) is not None
    )


def retry_after(headers: Any, now: datetime | None = None) -> float | None:
    """Seconds to wait, from Retry-After (RFC 9110 §10.2.3) or a rate-limit reset header.

    X sends ``x-rate-limit-reset`` (epoch seconds), Bluesky ``ratelimit-reset`` (epoch
    seconds), Mastodon ``X-RateLimit-Reset`` (an ISO 8601 time).
    """
    now = now or datetime.now(UTC)
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, (when - now).total_seconds())
        except (TypeError, ValueError):
            pass
    for name in ("x-rate-limit-reset", "ratelimit-reset", "x-ratelimit-reset"):
        value = headers.get(name)
        if not value:
            continue
        value = value.strip()
        try:
            if value.replace(".", "", 1).isdigit():
                seconds = float(value)
                # An epoch time, or (some servers) a number of seconds from now.
                return max(0.0, seconds - now.timestamp()) if seconds > 1e9 else seconds
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return max(0.0, (when - now).total_seconds())
        except ValueError:
            continue
    return None


def _body_retry_after(response: httpx.Response) -> float | None:
    """Discord and Telegram also say it in the body: ``retry_after`` (seconds)."""
    try:
        data = response.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for value in (data.get("retry_after"), (data.get("parameters") or {}).get("retry_after")):
        if isinstance(value, (int, float)):
            return float(value)
    return None


def api_error_text(response: httpx.Response, limit: int = 160) -> str:
    """The error message an API put in its body, on one short line."""
    try:
        data = response.json()
    except ValueError:
        text = response.text
    else:
        text = ""
        if isinstance(data, dict):
            for key in ("error_description", "error", "message", "detail", "description", "title"):
                value = data.get(key)
                if isinstance(value, str) and value:
                    text = value
                    break
            if not text and isinstance(data.get("errors"), list) and data["errors"]:
                first = data["errors"][0]
                text = first.get("message", "") if isinstance(first, dict) else str(first)
    text = " ".join(str(text).split())
    return text[:limit]
