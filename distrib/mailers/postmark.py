"""Postmark: the digest through Postmark's batch API, up to 500 messages per request.

API: https://postmarkapp.com/developer/api/email-api#send-batch-emails
(``POST /email/batch`` with ``X-Postmark-Server-Token``; the answer is an array with
one ``{"ErrorCode", "Message", "MessageID", "To"}`` per message, in request order).
Error codes: https://postmarkapp.com/developer/api/overview#error-codes

Postmark takes the bodies as fields (HtmlBody, TextBody), not as MIME, so each
recipient's bodies are the edition's with the values filled in (``html_for``,
``text_for``), and the RFC 8058 list headers go in ``Headers``.  Use a *broadcast*
message stream for newsletters (Postmark requires it) and set its "Unsubscribe
handling" to "None" in Postmark, so that our signed one-click link is the only one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from ..adapters import Report
from ..config import Opt, choice, k_bool, k_env_name, k_positive, k_str, k_url
from ..model import Outcome, Recipient
from ..render.message import clean_header
from ._http import (
    HttpMailer,
    Transient,
    check_transient,
    config_error,
    deliver_in_batches,
    display_address,
    error_text,
    json_or_none,
    transport_guard,
    with_retries,
)

if TYPE_CHECKING:
    from ..render.message import PreparedMessage

NAME = "postmark"
MAX_BATCH = 500  # Postmark's limit per /email/batch request
#: Postmark refuses a batch request over 50 MB; stay well under it (and keep memory low).
MAX_BATCH_BYTES = 30_000_000

#: Per-message codes that mean the account or the sender is not set up: the message is
#: deferred (it goes out once fixed) and the send stops with the fix.
_SETUP_CODES = {
    10: "the server token was refused",
    400: "the From address is not a confirmed sender signature",
    401: "the sender signature is not confirmed yet",
    405: "the account may not send (out of credits?)",
    412: "the account is pending approval and may only send to its own domain",
}


class PostmarkMailer(HttpMailer):
    """Sends through Postmark's batch API."""

    name = NAME
    options: ClassVar[dict[str, Opt]] = {
        "token_env": Opt(
            k_env_name,
            None,
            "environment variable holding the Postmark Server API token",
            required=True,
        ),
        "message_stream": Opt(
            k_str, "broadcast", "the Postmark message stream (a broadcast stream for newsletters)"
        ),
        "batch_size": Opt(k_positive, MAX_BATCH, "messages per API request (at most 500)"),
        "track_opens": Opt(k_bool, False, "let Postmark track opens"),
        "track_links": Opt(
            choice("None", "HtmlAndText", "HtmlOnly", "TextOnly"),
            "None",
            "let Postmark rewrite links to track clicks",
        ),
        "tag": Opt(k_str, "", "a Postmark tag for the messages (default: none)"),
        "base_url": Opt(k_url, "https://api.postmarkapp.com", "the API's base URL"),
        "timeout": Opt(k_positive, 60, "seconds to wait for one API request"),
    }

    def open_client(self) -> httpx.Client:
        token = self.required_secret("token_env", "the Server API token")
        return self.http_client(
            self.opts.get("base_url") or "https://api.postmarkapp.com",
            headers={"X-Postmark-Server-Token": token},
        )

    def describe(self) -> str:
        return f"through Postmark ({self.opts.get('message_stream') or 'broadcast'} stream)"

    def deliver(
        self, message: PreparedMessage, recipients: Iterator[Recipient], report: Report
    ) -> None:
        self._ensure_open()
        size = min(int(self.opts.get("batch_size") or MAX_BATCH), MAX_BATCH)
        # A 60 KB digest makes ~80 KB of JSON per message: fewer per request then.
        per_message = len(message.html.encode()) + len(message.text.encode()) + 2048
        size = max(1, min(size, MAX_BATCH_BYTES // per_message))
        deliver_in_batches(NAME, recipients, size, lambda batch: self._send(message, batch), report)

    # ---------------------------------------------------------------------------------

    def payload(self, message: PreparedMessage, recipient: Recipient) -> dict[str, Any]:
        """One message of a batch, as Postmark's API takes it."""
        headers = message.extra_headers(recipient)
        headers.pop("Message-ID", None)  # Postmark sets its own
        item: dict[str, Any] = {
            "From": display_address(message.from_name, message.envelope_from),
            "To": display_address(clean_header(recipient.name), recipient.email),
            "Subject": message.subject,
            "HtmlBody": message.html_for(recipient),
            "TextBody": message.text_for(recipient),
            "Headers": [{"Name": k, "Value": v} for k, v in headers.items()],
            "MessageStream": self.opts.get("message_stream") or "broadcast",
            "TrackOpens": bool(self.opts.get("track_opens")),
            "TrackLinks": self.opts.get("track_links") or "None",
            "Metadata": {"distrib-edition": str(message.edition_id)},
        }
        reply_to = self.ctx.settings.email.get("reply_to")
        if reply_to:
            item["ReplyTo"] = clean_header(reply_to)
        if self.opts.get("tag"):
            item["Tag"] = self.opts["tag"]
        return item

    def _send(
        self, message: PreparedMessage, batch: list[Recipient]
    ) -> Iterable[tuple[int, Outcome]]:
        body = [self.payload(message, r) for r in batch]
        client = self.client

        def post() -> httpx.Response:
            response = transport_guard(NAME, lambda: client.post("/email/batch", json=body))
            check_transient(response, NAME)
            return response

        response = with_retries(post)
        data = json_or_none(response)
        if response.status_code == 401:
            raise config_error(
                NAME,
                "the server token was refused (HTTP 401)",
                f"check the variable {self.opts['token_env']}",
            )
        if response.status_code != 200 or not isinstance(data, list):
            # 422: the whole request was refused (bad From, bad JSON ...).
            raise config_error(
                NAME,
                f"the batch was refused (HTTP {response.status_code}): {error_text(response)}",
                "fix [email] from or [email.postmark] and run again",
            )
        if len(data) != len(batch):
            raise Transient(f"{NAME}: {len(data)} results for {len(batch)} messages")
        setup_problem = ""
        for i, result in enumerate(data):
            code = result.get("ErrorCode", -1) if isinstance(result, dict) else -1
            text = str(result.get("Message", "")) if isinstance(result, dict) else ""
            if code == 0:
                yield i, Outcome.sent(str(result.get("MessageID", "")))
            elif code == 406:
                # Inactive recipient: bounced or complained before, Postmark will not send.
                yield i, Outcome.failed(f"{NAME} 406: {text}", bounce=True)
            elif code in _SETUP_CODES:
                setup_problem = f"{_SETUP_CODES[code]} ({code}: {text})"
                yield i, Outcome.deferred(f"{NAME} {code}: {text}")
            elif code == 429 or code >= 500:
                yield i, Outcome.deferred(f"{NAME} {code}: {text}")
            else:
                yield i, Outcome.failed(f"{NAME} {code}: {text}")
        if setup_problem:
            raise config_error(
                NAME, setup_problem, "fix the Postmark account or [email] from, then run again"
            )
