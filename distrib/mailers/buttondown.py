"""Buttondown: hand the edition off as a Buttondown email, for subscribers kept there.

API: https://docs.buttondown.com/api-emails-create
(``POST /v1/emails`` with ``subject``, ``body`` and ``status``: ``draft`` to review and
send it in Buttondown, ``about_to_send`` to send it at once; ``Authorization: Token
<API key>``; ``GET /v1/emails`` lists them, paginated with ``results`` and ``next``).

One delivery per edition (the pseudo-recipient ``handoff:buttondown``): the body
carries the HTML comment ``<!-- distrib-<edition id> -->``, so a run that died after
creating the email finds it instead of creating a second one.  Our per-recipient
placeholders become Buttondown's own template variables, so Buttondown fills in each
subscriber's address and unsubscribe link.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from ..config import Opt, choice, k_env_name, k_positive, k_str, k_url
from ._http import HandoffMailer, Transient, edition_marker
from .listmonk import fill_tags

if TYPE_CHECKING:
    from ..render.message import PreparedMessage

NAME = "buttondown"
#: Buttondown's template variables for the values we fill in per recipient: (url, email).
TAGS = ("{{ unsubscribe_url }}", "{{ subscriber.email }}")
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
#: Pages of recent emails searched for our marker (newest first): a crash is recent.
_FIND_PAGES = 3


class ButtondownMailer(HandoffMailer):
    """Creates one Buttondown email per edition, as a draft or to send at once."""

    name = NAME
    options: ClassVar[dict[str, Opt]] = {
        "token_env": Opt(k_env_name, None, "environment variable holding the Buttondown API key", required=True),
        "status": Opt(
            choice("about_to_send", "draft"), "about_to_send",
            "about_to_send: Buttondown sends it at once; draft: review and send it in Buttondown",
        ),
        "name_prefix": Opt(k_str, "distrib", "the marker in the body is '<!-- <name_prefix>-<edition id> -->'"),
        "base_url": Opt(k_url, "https://api.buttondown.com", "the API's base URL"),
        "timeout": Opt(k_positive, 60, "seconds to wait for one API request"),
    }

    def open_client(self) -> httpx.Client:
        token = self.required_secret("token_env", "the API key")
        return self.http_client(
            (self.opts.get("base_url") or "https://api.buttondown.com").rstrip("/"),
            headers={"Authorization": f"Token {token}"},
        )

    def describe(self) -> str:
        return f"handed off to Buttondown ({self.opts.get('status') or 'about_to_send'})"

    # ---------------------------------------------------------------------------------

    def marker(self, message: PreparedMessage) -> str:
        return f"<!-- {edition_marker(self.opts.get('name_prefix') or 'distrib', message.edition_id)} -->"

    def email(self, message: PreparedMessage) -> dict[str, Any]:
        """The ``POST /v1/emails`` body for this edition."""
        return {
            "subject": message.subject,
            "body": self.marker(message) + "\n" + fill_tags(message.html, message.markers, TAGS, html_literal),
            "status": self.opts.get("status") or "about_to_send",
        }

    def find(self, marker: str) -> dict[str, Any] | None:
        """A recent email whose body carries ``marker``."""
        url: str | None = "/v1/emails"
        params: dict[str, Any] | None = {"ordering": "-creation_date"}
        for _ in range(_FIND_PAGES):
            if not url:
                break
            r = self.api("GET", url, params=params)
            data = r.json()
            for item in data.get("results") or []:
                if marker in (item.get("body") or ""):
                    return item
            url, params = data.get("next"), None
            if url and not url.startswith(str(self.client.base_url).rstrip("/")):
                break  # never send our key to another host
        return None

    def hand_off(self, message: PreparedMessage) -> str:
        existing = self.find(self.marker(message))
        if existing is not None:
            return str(existing.get("id", ""))
        r = self.api("POST", "/v1/emails", json=self.email(message))
        data = r.json()
        if not isinstance(data, dict) or "id" not in data:
            raise Transient(f"{NAME}: the email was created without an id in the answer")
        return str(data["id"])
