"""X (Twitter): tweepy's ``Client.create_tweet`` with OAuth 1.0a user context.

* Length: twitter-text v3 weighted length, 280, every URL 23 (render/length.py).
* Images: X's v2 media upload, ``POST /2/media/upload`` (multipart: ``media``,
  ``media_category=tweet_image``), then ``POST /2/media/metadata`` for the alt text
  (https://docs.x.com/x-api/media/media-upload); tweepy has no v2 upload, so this is a
  small OAuth1-signed helper over tweepy's own session and signer.
* A 403 "duplicate content" means the same text is already on the account: a dead
  run's post went out.  It is recorded as sent (remote id unknown).
* A 429 defers the channel until the limit that was hit resets: the 15-minute window
  (``x-rate-limit-reset``) or the 24-hour caps (``x-user-limit-24hour-reset``,
  ``x-app-limit-24hour-reset``, https://docs.x.com/x-api/fundamentals/rate-limits);
  5xx is retried a bounded number of times, then deferred.  Nothing sleeps for long,
  and every request has a timeout (tweepy sets none of its own).
* A 401/403 (other than a duplicate) stops the channel for the run; its posts wait.
* X returns tweet text HTML-escaped (``&amp;``): a dead run's tweet is looked for in
  the unescaped text.  A GIF is not attached (it needs X's chunked upload): a warning
  says so.
* ``api_url`` (default https://api.x.com) replaces tweepy's built-in host, so a local
  server can stand in for X in tests.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from ..errors import Deferred, DeliveryError
from ..model import Outcome, Post, Snippet
from ..render.length import X_LIMIT, x_length
from ..schema import Opt, k_bool, k_env_name, k_url
from .base import BACKOFF, CARD_OPTIONS, DEFAULT_WAIT, RateLimited, ShareChannel, later, retry_after

log = logging.getLogger("distrib.channels.x")

TWEEPY_HOST = "https://api.twitter.com"
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # X's limit for images
#: (connect, read) seconds for every request to X: a cron run must never hang.
TIMEOUT = (10.0, 30.0)


def make_client(
    api_url: str, consumer_key: str, consumer_secret: str, access_token: str, access_secret: str
) -> Any:
    """A tweepy Client whose requests go to ``api_url`` instead of its built-in host.

    tweepy.Client.request builds ``"https://api.twitter.com" + route`` and sends it
    through ``self.session`` (a requests.Session); the session below rewrites that host,
    which is the one seam tweepy offers without copying its request method.
    """
    import requests
    import tweepy

    base = api_url.rstrip("/")

    class RebasedSession(requests.Session):
        def request(
            self, method: str, url: str | bytes, *args: Any, **kwargs: Any
        ) -> requests.Response:
            if isinstance(url, str) and url.startswith(TWEEPY_HOST):
                url = base + url[len(TWEEPY_HOST) :]
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = TIMEOUT
            return super().request(method, url, *args, **kwargs)

    client = tweepy.Client(
        consumer_key=consumer_key,
        consumer_secret=consumer_secret,
        access_token=access_token,
        access_token_secret=access_secret,
        wait_on_rate_limit=False,  # cron must not sleep: a 429 defers to a later run
    )
    client.session = RebasedSession()
    return client


class XChannel(ShareChannel):
    network: ClassVar[str] = "x"
    requires: ClassVar[tuple[str, ...]] = ("tweepy",)
    #: the tweepy client, made on first use
    _tweepy: Any = None
    options: ClassVar[dict[str, Opt]] = {
        "consumer_key_env": Opt(
            k_env_name, None, "environment variable holding the app's API key", required=True
        ),
        "consumer_secret_env": Opt(
            k_env_name, None, "environment variable holding the app's API key secret", required=True
        ),
        "access_token_env": Opt(
            k_env_name,
            None,
            "environment variable holding the account's access token",
            required=True,
        ),
        "access_token_secret_env": Opt(
            k_env_name,
            None,
            "environment variable holding the account's access token secret",
            required=True,
        ),
        "api_url": Opt(k_url, "https://api.x.com", "the API's base URL"),
        "images": Opt(k_bool, True, "attach the post's image, with its alt text"),
        **CARD_OPTIONS,
    }

    def counter(self) -> Callable[[str], int]:
        return x_length

    def limit(self) -> int:
        return X_LIMIT

    @property
    def api_url(self) -> str:
        return str(self.opt("api_url", "https://api.x.com")).rstrip("/")

    def _credentials(self) -> tuple[str, str, str, str]:
        def secret(key: str) -> str:
            return self.ctx.settings.secret(self.opts, key) or ""

        return (
            secret("consumer_key_env"),
            secret("consumer_secret_env"),
            secret("access_token_env"),
            secret("access_token_secret_env"),
        )

    @property
    def tweepy(self) -> Any:
        client = self._tweepy
        if client is None:
            client = make_client(self.api_url, *self._credentials())
            self._tweepy = client
        return client

    def publish(self, snippet: Snippet, post: Post, key: str) -> Outcome:
        import requests
        import tweepy

        media_ids = None
        if self.opt("images", True):
            image = self.image_for(snippet, post, MAX_IMAGE_BYTES)
            media_id = self._upload(image) if image is not None else None
            if media_id:
                media_ids = [media_id]
        tries = self.retries + 1
        for attempt in range(1, tries + 1):
            try:
                response = self.tweepy.create_tweet(text=snippet.text, media_ids=media_ids)
            except tweepy.TooManyRequests as e:
                wait = x_retry_after(e.response.headers)
                raise RateLimited(
                    f"channel {self.name}: rate limited by X (429); {later(wait)}", retry_after=wait
                ) from None
            except tweepy.Forbidden as e:
                if _is_duplicate(e):
                    log.info("channel %s: X says %s is already posted", self.name, post.key)
                    return Outcome.sent(remote_id=self._find(snippet) or "")
                raise self.auth_failed(
                    403,
                    f"X refused the post ({_x_error(e) or 'forbidden'}); give the app read and write "
                    f"access, then regenerate the access token and secret in "
                    f"{self.opts.get('access_token_env')} and {self.opts.get('access_token_secret_env')}",
                ) from None
            except tweepy.Unauthorized:
                raise self.auth_failed(
                    401,
                    f"renew the keys in {self.opts.get('consumer_key_env')}, {self.opts.get('consumer_secret_env')}, "
                    f"{self.opts.get('access_token_env')} and {self.opts.get('access_token_secret_env')}",
                ) from None
            except (tweepy.TwitterServerError, requests.RequestException) as e:
                # A 5xx or a dropped connection: worth another try within the run.
                if attempt < tries:
                    time.sleep(BACKOFF * attempt)
                    continue
                if isinstance(e, tweepy.TwitterServerError):
                    why = f"X answered {e.response.status_code} {tries} times"
                else:
                    why = f"X unreachable ({type(e).__name__})"
                raise Deferred(
                    f"channel {self.name}: {why}; {later(DEFAULT_WAIT)}", retry_after=DEFAULT_WAIT
                ) from None
            except tweepy.HTTPException as e:
                raise DeliveryError(
                    f"channel {self.name}: X refused the post ({e.response.status_code}: {_x_error(e)})"
                ) from None
            data = response.data or {}
            return Outcome.sent(remote_id=str(data.get("id", "")))
        raise AssertionError("unreachable")

    def _find(self, snippet: Snippet) -> str | None:
        """The id of a recent tweet of this account that begins like ``snippet``, if X
        lets us read them (reading needs a paid API tier; without it: None)."""
        import requests
        import tweepy

        first_line = snippet.text.split("\n", 1)[0].strip()
        if not first_line:
            return None
        try:
            me = self.tweepy.get_me(user_auth=True)
            user_id = (me.data or {})["id"]
            tweets = self.tweepy.get_users_tweets(user_id, max_results=10, user_auth=True)
        except (tweepy.TweepyException, requests.RequestException, KeyError, TypeError):
            return None
        for tweet in tweets.data or ():
            # X returns links as t.co, and the text HTML-escaped ("&amp;", "&lt;"):
            # compare the unescaped text before the first link.
            if html.unescape(str(tweet["text"])).startswith(first_line):
                return str(tweet["id"])
        return None

    def reconcile(self, snippet: Snippet, post: Post, key: str) -> Outcome | None:
        found = self._find(snippet)
        return Outcome.sent(remote_id=found) if found else None

    # --- media: the v2 upload endpoint, signed with tweepy's OAuth1 signer ------------------

    def _signed(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests
        from tweepy import OAuth1UserHandler

        auth = OAuth1UserHandler(*self._credentials()).apply_auth()
        try:
            r = self.tweepy.session.request(
                method, self.api_url + path, auth=auth, timeout=60, **kwargs
            )
        except requests.RequestException as e:
            log.warning(
                "channel %s: media upload failed (%s); posting without the image",
                self.name,
                type(e).__name__,
            )
            return None
        if r.status_code == 429:
            wait = x_retry_after(r.headers)
            raise RateLimited(
                f"channel {self.name}: rate limited by X's media upload (429); {later(wait)}",
                retry_after=wait,
            )
        return r

    def _upload(self, image: tuple[bytes, str, str]) -> str | None:
        data, mime, alt = image
        if mime == "image/gif":
            # X takes a GIF only through its chunked upload (media_category tweet_gif),
            # which distrib does not do: say so rather than drop it silently.
            log.warning(
                "channel %s: X needs a chunked upload for a GIF; posting without the image",
                self.name,
            )
            return None
        r = self._signed(
            "POST",
            "/2/media/upload",
            files={"media": ("image", data, mime)},
            data={"media_category": "tweet_image", "media_type": mime},
        )
        if r is None or r.status_code not in (200, 201):
            if r is not None:
                log.warning(
                    "channel %s: media upload answered %s; posting without the image",
                    self.name,
                    r.status_code,
                )
            return None
        try:
            media_id = str(r.json()["data"]["id"])
        except (ValueError, KeyError, TypeError):
            log.warning(
                "channel %s: unexpected media upload answer; posting without the image", self.name
            )
            return None
        if alt:
            meta = self._signed(
                "POST",
                "/2/media/metadata",
                json={"id": media_id, "metadata": {"alt_text": {"text": alt[:1000]}}},
            )
            if meta is None or meta.status_code not in (200, 201):
                log.warning("channel %s: alt text not set on the image", self.name)
        return media_id

    def describe(self) -> str:
        return "on X"


def _x_body(e: Any) -> dict[str, Any]:
    try:
        data = e.response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _x_error(e: Any) -> str:
    body = _x_body(e)
    text = (
        body.get("detail")
        or "; ".join(getattr(e, "api_messages", []) or [])
        or body.get("title")
        or ""
    )
    return " ".join(str(text).split())[:160]


def _is_duplicate(e: Any) -> bool:
    """X's answer to the same text posted twice (v2: a 403 whose detail says so; v1.1: code 187)."""
    if 187 in (getattr(e, "api_codes", None) or []):
        return True
    return "duplicate" in _x_error(e).lower()


def x_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds until the X limit that was hit resets.

    X answers a 429 with the 15-minute window's ``x-rate-limit-reset`` and, when a
    24-hour cap is the one exhausted, ``x-user-limit-24hour-reset`` or
    ``x-app-limit-24hour-reset`` (epoch seconds, with their ``-remaining``).  The
    latest reset of an exhausted limit wins: retrying at the 15-minute reset while
    the daily cap is spent would only be refused again.
    """
    now = time.time() if now is None else now
    waits: list[float] = []
    for prefix in ("x-user-limit-24hour", "x-app-limit-24hour", "x-rate-limit"):
        reset = headers.get(f"{prefix}-reset")
        if not reset:
            continue
        remaining = str(headers.get(f"{prefix}-remaining", "0")).strip()
        if remaining not in ("0", ""):
            continue  # this limit is not the one that was hit
        try:
            waits.append(max(0.0, float(reset) - now))
        except ValueError:
            continue
    if waits:
        return max(waits)
    return retry_after(headers)
