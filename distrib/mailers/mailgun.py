"""Mailgun: each recipient's finished MIME message through ``messages.mime``.

API: https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages
(``POST /v3/<domain>/messages.mime``, HTTP basic auth ``api:<key>``, multipart form
with ``to`` and the ``message`` file; the answer is ``{"id": "<…>", "message":
"Queued. Thank you."}``).  EU domains live at ``https://api.eu.mailgun.net``.

Why one MIME message per recipient and not Mailgun's batch sending (one request with
up to 1,000 ``to`` and ``recipient-variables``): the batch form re-renders the message
on Mailgun's side from fields and %recipient.x% substitutions, so our bytes would not
go out unchanged, and one answer would cover 1,000 people with no per-recipient
outcome.  With ``messages.mime`` every recipient gets exactly the message the other
mailers send (its own Message-ID and signed List-Unsubscribe headers), each answer
is that recipient's outcome, and a crash can repeat at most the ``connections``
requests in flight.  The cost, one request per recipient, is paid over a few
keep-alive connections in parallel.

A request that got no answer (a timeout, a dropped connection, a 500) is not sent
again: Mailgun takes no idempotency key.  The message's Message-ID (ours, set in the
MIME) is looked up in Mailgun's events (``GET /v3/<domain>/events?message-id=…``):
an ``accepted`` event means it was sent; none means it is in doubt.  At most the
``connections`` requests in flight can be in doubt after a timeout or a kill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from ..config import (
    Ctx,
    Invalid,
    Opt,
    choice,
    k_bool,
    k_env_name,
    k_number,
    k_positive,
    k_str,
    k_str_list,
    k_url,
)
from ..model import Outcome, Recipient
from ..render.message import ascii_address
from ._http import (
    InDoubt,
    ParallelMailer,
    Transient,
    check_transient,
    error_text,
    json_or_none,
    transport_guard,
    with_retries,
)

if TYPE_CHECKING:
    from ..render.message import PreparedMessage

NAME = "mailgun"
REGIONS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
#: Mailgun takes at most 3 tags (o:tag) per message.
MAX_TAGS = 3


def k_tags(v: Any, ctx: Ctx) -> tuple[str, ...]:
    tags = k_str_list(v, ctx)
    if len(tags) > MAX_TAGS:
        raise Invalid(f"at most {MAX_TAGS} tags (Mailgun's limit per message), not {len(tags)}")
    return tags


class MailgunMailer(ParallelMailer):
    """Sends each recipient's MIME message through Mailgun's HTTP API."""

    name = NAME
    options: ClassVar[dict[str, Opt]] = {
        "domain": Opt(
            k_str,
            None,
            "the sending domain set up in Mailgun, such as 'mg.example.org'",
            required=True,
        ),
        "api_key_env": Opt(
            k_env_name, None, "environment variable holding the Mailgun API key", required=True
        ),
        "region": Opt(choice("us", "eu"), "us", "the region of the domain: us or eu"),
        "base_url": Opt(k_url, None, "the API's base URL (default: from region)"),
        "connections": Opt(k_positive, 4, "requests in parallel"),
        "rate": Opt(k_number, 0.0, "at most this many messages per second (0: no limit)"),
        "tags": Opt(k_tags, (), "Mailgun tags (o:tag) for the messages, at most 3"),
        "tracking": Opt(
            k_bool, False, "let Mailgun track opens and rewrite links (changes our bytes)"
        ),
        "timeout": Opt(k_positive, 60, "seconds to wait for one API request"),
    }

    @property
    def base_url(self) -> str:
        return self.opts.get("base_url") or REGIONS[self.opts.get("region") or "us"]

    def open_client(self) -> httpx.Client:
        key = self.required_secret("api_key_env", "the API key")
        return self.http_client(self.base_url, auth=("api", key))

    def describe(self) -> str:
        return f"through Mailgun ({self.opts.get('domain')}, {self.base_url})"

    # ---------------------------------------------------------------------------------

    def form(self, message: PreparedMessage, recipient: Recipient) -> dict[str, str | list[str]]:
        data: dict[str, str | list[str]] = {
            "to": ascii_address(recipient.email),
            "v:distrib-edition": str(message.edition_id),
        }
        if not self.opts.get("tracking"):
            data["o:tracking"] = "no"
        tags = list(self.opts.get("tags") or ())
        if tags:
            data["o:tag"] = tags
        return data

    def setup_fix(self) -> str:
        return f"check [email.mailgun] domain, region and {self.opts['api_key_env']}"

    def send_one(self, message: PreparedMessage, recipient: Recipient) -> tuple[Outcome, str]:
        client = self.client
        path = f"/v3/{self.opts['domain']}/messages.mime"
        data = self.form(message, recipient)
        raw = message.for_recipient(recipient)

        def post() -> httpx.Response:
            files = {"message": ("message.eml", raw, "message/rfc822")}
            response = transport_guard(NAME, lambda: client.post(path, data=data, files=files))
            check_transient(response, NAME)
            return response

        try:
            response = with_retries(post)
        except Transient as e:
            return Outcome.deferred(e.reason, e.retry_after), ""
        except InDoubt as e:
            return self.reconcile(message.message_id(recipient), e.reason), ""
        status = response.status_code
        if status == 200:
            body = json_or_none(response)
            remote = body.get("id", "") if isinstance(body, dict) else ""
            return Outcome.sent(str(remote) or message.message_id(recipient)), ""
        text = f"{NAME} HTTP {status}: {error_text(response)}"
        if status == 401:
            return Outcome.deferred(text), "the API key was refused (HTTP 401)"
        if status in (402, 403):
            # A disabled account, a sandbox domain's unauthorised recipient, a domain
            # not allowed to send: every message gets the same answer.
            return Outcome.deferred(text), (
                f"Mailgun does not let this account or domain send (HTTP {status}: "
                f"{error_text(response)})"
            )
        if status == 404:
            return Outcome.deferred(
                text
            ), "the domain was not found (HTTP 404): wrong domain or region?"
        return Outcome.failed(text), ""

    def reconcile(self, message_id: str, reason: str) -> Outcome:
        """Whether Mailgun took a message whose request got no answer: its events for
        our Message-ID (an ``accepted`` event: sent; none: in doubt)."""
        try:
            r = self.client.get(
                f"/v3/{self.opts['domain']}/events",
                params={"message-id": message_id.strip("<>"), "event": "accepted", "limit": 10},
            )
            body = json_or_none(r) if r.status_code == 200 else None
        except httpx.HTTPError:
            body = None
        items = body.get("items") if isinstance(body, dict) else None
        for item in items or []:
            if isinstance(item, dict) and item.get("event") == "accepted":
                return Outcome.sent(f"<{message_id.strip('<>')}>")
        return self.unanswered(reason)
