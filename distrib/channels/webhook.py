"""Chat channels that take a plain HTTP request: Slack, Discord, Telegram.

Three channel types in one module, because they share the shape: one POST per share,
a per-network length limit, the secret in the URL (read from an environment variable,
never logged; errors name only the host).

* Slack incoming webhooks (https://api.slack.com/messaging/webhooks): ``text`` plus one
  ``section`` block in mrkdwn, which holds at most 3000 characters
  (https://api.slack.com/reference/block-kit/blocks#section); ``&``, ``<``, ``>`` escaped,
  and ``verbatim`` so nothing in a title is parsed as a mention or a channel.  An image
  Slack cannot fetch fails the whole message (400 ``invalid_blocks``): it is sent again
  without the image.
* Discord webhooks (https://discord.com/developers/docs/resources/webhook#execute-webhook):
  ``content`` up to 2000 characters, ``?wait=true`` to get the message id back, mentions
  disabled so a title cannot ping @everyone; a forum channel needs ``thread_name`` (each
  share opens a post there).
* A refused or revoked webhook or token (401, 403, 404) stops the channel for the run;
  its posts wait, and the message names the variable to renew.
* Telegram Bot API ``sendMessage`` (https://core.telegram.org/bots/api#sendmessage): text
  up to 4096 characters (counted in UTF-16 code units, as Telegram measures entities).

None of them de-duplicates a repeated request, so a share a dead run left in flight may
appear twice there: the ledger keeps that to the one message in flight at the kill.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import DeliveryError
from ..model import Outcome, Post, Snippet
from ..schema import Ctx, Invalid, Opt, k_bool, k_env_name, k_positive, k_str, k_url
from .base import ShareChannel

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("distrib.channels.webhook")


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def slack_escape(text: str) -> str:
    """Slack's three control characters (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def k_chat_id(v: Any, ctx: Ctx) -> str:
    """A Telegram chat: '@channelusername' or a numeric id (channels: -100...)."""
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    if isinstance(v, str) and re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,}|-?\d+", v):
        return v
    raise Invalid("a chat such as '@harbourlight' or '-1001234567890'")


class _WebhookChannel(ShareChannel):
    #: Webhooks cannot tell a repeated request from a new one: a 5xx is not retried
    #: within the run (it may have been posted), it is deferred to the next run.
    retries: ClassVar[int] = 0
    default_limit: ClassVar[int] = 2000

    def limit(self) -> int:
        return min(int(self.opt("limit", self.default_limit)), self.default_limit)

    def _url(self) -> str:
        url = self.ctx.settings.secret(self.opts, "url_env")
        if not url or not url.startswith("https://") and not url.startswith("http://"):
            raise DeliveryError(
                f"channel {self.name}: the variable {self.opts.get('url_env')} does not hold an http(s) URL; "
                f"export the webhook URL the service gave you"
            )
        return url

    def refused(self, r: httpx.Response) -> Exception:
        """A webhook URL or token that is refused or gone: stop the channel, say which."""
        from .base import api_error_text

        what = "token_env" if "token_env" in self.options else "url_env"
        secret = "bot token" if what == "token_env" else "webhook URL"
        return self.auth_failed(
            r.status_code,
            f"renew the {self.network} {secret} in {self.opts.get(what)}",
            api_error_text(r),
        )


class SlackChannel(_WebhookChannel):
    network: ClassVar[str] = "slack"
    default_limit: ClassVar[int] = 3000
    options: ClassVar[dict[str, Opt]] = {
        "url_env": Opt(
            k_env_name, None, "environment variable holding the incoming webhook URL", required=True
        ),
        "limit": Opt(k_positive, 3000, "characters per message (a section block holds 3000)"),
        "images": Opt(k_bool, True, "add the post's image as an image block"),
    }

    def counter(self) -> Callable[[str], int]:
        return lambda text: len(slack_escape(text))

    def payload(self, snippet: Snippet, *, image: bool = True) -> dict[str, Any]:
        text = slack_escape(snippet.text)
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
        ]
        if (
            image
            and self.opt("images", True)
            and snippet.image is not None
            and snippet.image.url.startswith("https://")
        ):
            blocks.append(
                {
                    "type": "image",
                    "image_url": snippet.image.url,
                    "alt_text": (snippet.image.alt or "image")[:2000],
                }
            )
        return {"text": text, "blocks": blocks, "unfurl_links": True}

    def publish(self, snippet: Snippet, post: Post, key: str) -> Outcome:
        url = self._url()
        payload = self.payload(snippet)
        r = self.request("POST", url, json=payload)
        if r.status_code == 400 and "invalid_blocks" in r.text and len(payload["blocks"]) > 1:
            # Slack could not fetch the image (or refused it) and so refused the whole
            # message, posting nothing: send it again without the image.
            log.warning(
                "channel %s: Slack refused the image block (%s); posting without it",
                self.name,
                r.text[:60],
            )
            r = self.request("POST", url, json=self.payload(snippet, image=False))
        if r.status_code == 200:
            return Outcome.sent()
        if r.status_code in (401, 403) or (r.status_code == 404 and "no_service" in r.text):
            raise self.refused(r)
        raise self.fail(r, "posting to Slack")

    def describe(self) -> str:
        return "to Slack"


class DiscordChannel(_WebhookChannel):
    network: ClassVar[str] = "discord"
    default_limit: ClassVar[int] = 2000
    options: ClassVar[dict[str, Opt]] = {
        "url_env": Opt(
            k_env_name, None, "environment variable holding the webhook URL", required=True
        ),
        "limit": Opt(k_positive, 2000, "characters per message (Discord allows 2000)"),
        "username": Opt(k_str, None, "the name the messages show; default: the webhook's"),
        "thread_name": Opt(
            k_str,
            None,
            "a forum channel's webhook: the name of the post each share opens; '{title}' is the post's title",
        ),
    }

    def counter(self) -> Callable[[str], int]:
        return utf16_length

    def payload(self, snippet: Snippet, title: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {"content": snippet.text, "allowed_mentions": {"parse": []}}
        if self.opt("username"):
            body["username"] = self.opt("username")
        thread = self.opt("thread_name")
        if thread:
            # Discord: a forum channel's webhook must name the thread (post) to open;
            # thread names hold at most 100 characters.
            name = " ".join(str(thread).replace("{title}", title).split()) or title or "News"
            body["thread_name"] = name if len(name) <= 100 else name[:99].rstrip() + "…"
        return body

    def publish(self, snippet: Snippet, post: Post, key: str) -> Outcome:
        r = self.request(
            "POST", self._url(), params={"wait": "true"}, json=self.payload(snippet, post.title)
        )
        if r.status_code in (200, 204):
            message_id = ""
            if r.status_code == 200:
                try:
                    message_id = str(r.json().get("id", ""))
                except ValueError:
                    pass
            return Outcome.sent(remote_id=message_id)
        if r.status_code in (401, 403, 404):
            raise self.refused(r)
        raise self.fail(r, "posting to Discord")

    def describe(self) -> str:
        return "to Discord"


class TelegramChannel(_WebhookChannel):
    network: ClassVar[str] = "telegram"
    default_limit: ClassVar[int] = 4096
    options: ClassVar[dict[str, Opt]] = {
        "token_env": Opt(
            k_env_name,
            None,
            "environment variable holding the bot token from @BotFather",
            required=True,
        ),
        "chat_id": Opt(
            k_chat_id,
            None,
            "the chat: '@channelname' or a numeric id such as '-1001234567890'",
            required=True,
        ),
        "api_url": Opt(k_url, "https://api.telegram.org", "the Bot API server"),
        "limit": Opt(k_positive, 4096, "characters per message (Telegram allows 4096)"),
        "silent": Opt(k_bool, False, "send without a notification sound"),
    }

    def counter(self) -> Callable[[str], int]:
        return utf16_length

    def payload(self, snippet: Snippet) -> dict[str, Any]:
        body: dict[str, Any] = {
            "chat_id": self.opt("chat_id"),
            "text": snippet.text,
            "link_preview_options": {"url": snippet.link, "prefer_large_media": True},
        }
        if self.opt("silent", False):
            body["disable_notification"] = True
        return body

    def publish(self, snippet: Snippet, post: Post, key: str) -> Outcome:
        token = self.ctx.settings.secret(self.opts, "token_env")
        base = str(self.opt("api_url", "https://api.telegram.org")).rstrip("/")
        r = self.request("POST", f"{base}/bot{token}/sendMessage", json=self.payload(snippet))
        try:
            data = r.json()
        except ValueError:
            data = {}
        if r.status_code == 200 and data.get("ok"):
            message_id = (data.get("result") or {}).get("message_id", "")
            return Outcome.sent(remote_id=f"{self.opt('chat_id')}/{message_id}")
        if r.status_code in (401, 403, 404):
            # 401: a wrong token; 404: the API knows no such bot; 403: the bot was
            # removed from the chat or may not post there.
            raise self.refused(r)
        raise self.fail(r, "posting to Telegram")

    def describe(self) -> str:
        return f"to Telegram {self.opt('chat_id')}"
