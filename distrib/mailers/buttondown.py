"""Buttondown: hand the edition off as a Buttondown email, for subscribers kept there.

API: https://docs.buttondown.com/api-emails-create
(``POST /v1/emails`` with ``subject``, ``body``, ``status`` and ``metadata``;
``Authorization: Token <API key>``; ``GET /v1/emails`` lists them, paginated with
``results`` and ``next``).  The API version is pinned with ``X-API-Version``
(https://docs.buttondown.com/api-versioning), so a new version cannot change what a
request does.

Sending is an explicit choice: ``status = "draft"`` (the default) leaves a draft to
review and send in Buttondown; ``status = "about_to_send"`` sends at once, and on the
pinned version Buttondown refuses that (400 ``sending_requires_confirmation``) unless
the request carries ``X-Buttondown-Live-Dangerously: true``, which distrib then sends.

One delivery per edition (the pseudo-recipient ``handoff:buttondown``), made safe
twice over: the create request carries ``X-Idempotency-Key`` (one per edition, so a
request repeated after a timeout returns the same email instead of a second one,
https://docs.buttondown.com/api-idempotency-keys), and the email's documented
``metadata`` holds ``{"distrib_edition": "<name_prefix>-<edition id>"}``, so a run
that died after creating it finds it among the recent emails instead of creating a
second one.  Our per-recipient placeholders become Buttondown's own template
variables, so Buttondown fills in each subscriber's address and unsubscribe link.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any, ClassVar, cast

import httpx

from ..errors import DeliveryError
from ..schema import Opt, choice, k_env_name, k_positive, k_str, k_url
from ._http import HandoffMailer, Transient, edition_marker, json_or_none
from .listmonk import fill_tags

if TYPE_CHECKING:
    from ..render.message import PreparedMessage

NAME = "buttondown"
#: Buttondown's template variables for the values we fill in per recipient: (unsubscribe
#: url, email, preferences url).  Buttondown has no preferences variable: its unsubscribe
#: page is where a reader manages the subscription.
TAGS = ("{{ unsubscribe_url }}", "{{ subscriber.email }}", "{{ unsubscribe_url }}")
_STYLE = re.compile(r"(<style\b.*?</style>)", re.S | re.I)
_TAG_START = re.compile(r"\{(?=[{%#])")


def html_literal(html: str) -> str:
    """``html`` with every "{{", "{%" and "{#" (a post's title or text may hold one)
    written with the first brace as ``&#123;``: the reader sees the same text, and
    Buttondown's template language finds no tag in it.  <style> blocks, where a
    character reference means nothing, come from the theme and are left as they are."""
    parts = _STYLE.split(html)
    for i in range(0, len(parts), 2):
        parts[i] = _TAG_START.sub("&#123;", parts[i])
    return "".join(parts)


#: The API version every request asks for: the one whose behaviour this module follows.
API_VERSION = "2026-04-01"
#: The ``metadata`` key that ties a Buttondown email to our edition.
METADATA_KEY = "distrib_edition"
#: Pages of recent emails searched for our edition (newest first): a crash is recent.
_FIND_PAGES = 3


class ButtondownMailer(HandoffMailer):
    """Creates one Buttondown email per edition, as a draft or to send at once."""

    name = NAME
    options: ClassVar[dict[str, Opt]] = {
        "token_env": Opt(
            k_env_name, None, "environment variable holding the Buttondown API key", required=True
        ),
        "status": Opt(
            choice("draft", "about_to_send"),
            "draft",
            "draft: review and send it in Buttondown; about_to_send: Buttondown sends it at once",
        ),
        "name_prefix": Opt(
            k_str, "distrib", "the email's metadata distrib_edition is '<name_prefix>-<edition id>'"
        ),
        "base_url": Opt(k_url, "https://api.buttondown.com", "the API's base URL"),
        "timeout": Opt(k_positive, 60, "seconds to wait for one API request"),
    }

    @property
    def sends(self) -> bool:
        """True when the email is sent at once, not left as a draft."""
        return (self.opts.get("status") or "draft") == "about_to_send"

    def open_client(self) -> httpx.Client:
        token = self.required_secret("token_env", "the API key")
        headers = {"Authorization": f"Token {token}", "X-API-Version": API_VERSION}
        if self.sends:
            # The documented confirmation that about_to_send really means "send now".
            headers["X-Buttondown-Live-Dangerously"] = "true"
        return self.http_client(
            (self.opts.get("base_url") or "https://api.buttondown.com").rstrip("/"), headers=headers
        )

    def describe(self) -> str:
        if self.sends:
            return "handed off to Buttondown, which sends it at once"
        return "handed off to Buttondown as a draft"

    def check_notes(self) -> list[str]:
        """What `distrib check` says about this mailer."""
        if self.sends:
            return [
                'buttondown: status = "about_to_send": each edition is SENT to your Buttondown '
                "subscribers at once (with the X-Buttondown-Live-Dangerously confirmation header)"
            ]
        return [
            'buttondown: status = "draft": each edition is left as a draft, sent only when you '
            'send it in Buttondown (set status = "about_to_send" to send at once)'
        ]

    # ---------------------------------------------------------------------------------

    def marker(self, message: PreparedMessage) -> str:
        return edition_marker(self.opts.get("name_prefix") or "distrib", message.edition_id)

    def idempotency_key(self, message: PreparedMessage) -> str:
        """One key per edition: the marker and a digest of the edition, so that another
        ledger's edition with the same number never matches ours."""
        digest = hashlib.sha256(
            "\0".join((message.subject, message.html, message.text)).encode()
        ).hexdigest()[:32]
        return f"{self.marker(message)}-{digest}"

    def email(self, message: PreparedMessage) -> dict[str, Any]:
        """The ``POST /v1/emails`` body for this edition."""
        return {
            "subject": message.subject,
            "body": fill_tags(message.html, message.markers, TAGS, html_literal),
            "status": "about_to_send" if self.sends else "draft",
            "metadata": {METADATA_KEY: self.marker(message)},
        }

    def find(self, marker: str) -> dict[str, Any] | None:
        """A recent email whose metadata names ``marker`` (or, made by an older distrib,
        whose body starts with the comment ``<!-- marker -->``)."""
        url: str | None = "/v1/emails"
        params: dict[str, Any] | None = {"ordering": "-creation_date"}
        legacy = f"<!-- {marker} -->"
        for _ in range(_FIND_PAGES):
            if not url:
                break
            r = self.api("GET", url, params=params)
            data = r.json()
            for item in data.get("results") or []:
                metadata = item.get("metadata")
                if isinstance(metadata, dict) and metadata.get(METADATA_KEY) == marker:
                    return cast("dict[str, Any]", item)
                if legacy in (item.get("body") or ""):
                    return cast("dict[str, Any]", item)
            url, params = data.get("next"), None
            if url and not url.startswith(str(self.client.base_url).rstrip("/")):
                break  # never send our key to another host
        return None

    def hand_off(self, message: PreparedMessage) -> str:
        marker = self.marker(message)
        existing = self.find(marker)
        if existing is not None:
            return str(existing.get("id", ""))
        try:
            r = self.api(
                "POST",
                "/v1/emails",
                json=self.email(message),
                headers={"X-Idempotency-Key": self.idempotency_key(message)},
            )
        except DeliveryError as e:
            if "sending_requires_confirmation" in str(e):
                raise DeliveryError(
                    f"{NAME}: Buttondown asks to confirm sending (sending_requires_confirmation); "
                    'set status = "about_to_send" in [email.buttondown] to send, or "draft"'
                ) from None
            raise
        data = json_or_none(r)
        if not isinstance(data, dict) or "id" not in data:
            raise Transient(f"{NAME}: the email was created without an id in the answer")
        return str(data["id"])
