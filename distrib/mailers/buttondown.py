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

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from ..adapters import Context, Mailer, Report
from ..config import Opt, choice, k_env_name, k_positive, k_str, k_url
from ..errors import ConfigError
from ..model import PLACEHOLDER_EMAIL, PLACEHOLDER_UNSUBSCRIBE_URL, Recipient
from ._http import HandoffBase, Transient, edition_marker, make_client, request
from .listmonk import fill_tags

if TYPE_CHECKING:
    from ..config import Section
    from ..render.message import PreparedMessage

NAME = "buttondown"
TAGS = {PLACEHOLDER_UNSUBSCRIBE_URL: "{{ unsubscribe_url }}", PLACEHOLDER_EMAIL: "{{ subscriber.email }}"}
#: Pages of recent emails searched for our marker (newest first): a crash is recent.
_FIND_PAGES = 3


class ButtondownMailer(HandoffBase, Mailer):
    """Creates one Buttondown email per edition, as a draft or to send at once."""

    handoff: ClassVar[bool] = True
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

    def __init__(self, options: Section, ctx: Context):
        super().__init__(options, ctx)
        self.client: httpx.Client | None = None

    def __enter__(self) -> ButtondownMailer:
        token = self.ctx.settings.secret(self.opts, "token_env", where="email.buttondown")
        if not token:
            raise ConfigError("email.buttondown.token_env: missing; name the variable that holds the API key")
        self.client = make_client(
            (self.opts.get("base_url") or "https://api.buttondown.com").rstrip("/"),
            headers={"Authorization": f"Token {token}"},
            timeout=float(self.opts.get("timeout") or 60),
            connections=1,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def describe(self) -> str:
        return f"handed off to Buttondown ({self.opts.get('status') or 'about_to_send'})"

    def deliver(self, message: PreparedMessage, recipients: Iterator[Recipient], report: Report) -> None:
        if self.client is None:
            self.__enter__()
        self.deliver_handoff(message, recipients, report)

    # ---------------------------------------------------------------------------------

    def marker(self, message: PreparedMessage) -> str:
        return f"<!-- {edition_marker(self.opts.get('name_prefix') or 'distrib', message.edition_id)} -->"

    def email(self, message: PreparedMessage) -> dict[str, Any]:
        """The ``POST /v1/emails`` body for this edition."""
        return {
            "subject": message.subject,
            "body": self.marker(message) + "\n" + fill_tags(message.html, TAGS),
            "status": self.opts.get("status") or "about_to_send",
        }

    def find(self, marker: str) -> dict[str, Any] | None:
        """A recent email whose body carries ``marker``."""
        assert self.client is not None
        url: str | None = "/v1/emails"
        params: dict[str, Any] | None = {"ordering": "-creation_date"}
        for _ in range(_FIND_PAGES):
            if not url:
                break
            r = request(self.client, NAME, "GET", url, params=params)
            data = r.json()
            for item in data.get("results") or []:
                if marker in (item.get("body") or ""):
                    return item
            url, params = data.get("next"), None
            if url and not url.startswith(str(self.client.base_url).rstrip("/")):
                break  # never send our key to another host
        return None

    def hand_off(self, message: PreparedMessage) -> str:
        assert self.client is not None
        existing = self.find(self.marker(message))
        if existing is not None:
            return str(existing.get("id", ""))
        r = request(self.client, NAME, "POST", "/v1/emails", json=self.email(message))
        data = r.json()
        if not isinstance(data, dict) or "id" not in data:
            raise Transient(f"{NAME}: the email was created without an id in the answer")
        return str(data["id"])
