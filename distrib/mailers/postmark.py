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

A batch is split into requests of at most 50 MB of the JSON actually sent (a CJK
digest whose characters a client escapes takes twice its UTF-8 size).  A batch request that got no
answer (a timeout, a 500) is not sent again: Postmark has no idempotency key.  Each of
its messages is looked up in Postmark's outbound message search (by recipient and our
``distrib-edition`` metadata): found, it was sent; not found, it is in doubt (at most
one batch, ``batch_size`` messages, per timeout or kill).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from ..adapters import Report
from ..errors import DeliveryError
from ..model import Outcome, Recipient
from ..render.message import clean_header
from ..schema import Opt, choice, k_bool, k_env_name, k_positive, k_str, k_url
from ._http import (
    HttpMailer,
    InDoubt,
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

log = logging.getLogger("distrib")
#: Seconds to let Postmark's message log catch up before it is searched.
RECONCILE_WAIT = 2.0

NAME = "postmark"
MAX_BATCH = 500  # Postmark's limit per /email/batch request
#: Postmark refuses a batch request over 50 MB: measured on the JSON bytes we send.
MAX_BATCH_BYTES = 50_000_000

#: Postmark's API error codes (https://postmarkapp.com/developer/api/overview#error-codes),
#: sorted by what they mean for one message of a batch.  A *setup* code is the same for
#: every message (the account, the sender, the token, our request): the message is put
#: back as never tried and the send stops with the fix.  A *recipient* code fails that
#: one message.  A *later* code defers it.  Codes of 500 and above are API codes about
#: sender signatures, domains, servers, streams and templates, not server faults: any
#: such code not listed is a setup problem too.
SETUP_CODES: dict[int, str] = {
    10: "the server token was refused: check the variable named by token_env",
    400: "the From address is not a sender signature in Postmark: add and confirm it, or its domain",
    401: "the From address's sender signature is not confirmed yet: confirm it in Postmark",
    402: "Postmark could not read distrib's request (invalid JSON): please report it",
    403: "Postmark could not use distrib's request (incompatible JSON): please report it",
    405: "the account may not send (out of credits?): check billing in Postmark",
    409: "Postmark did not get JSON from distrib: please report it",
    410: "distrib sent too many messages in one batch: lower batch_size",
    412: "the account is pending approval and may only send to its own domain: finish Postmark's approval",
    413: "the account may not send: contact Postmark support",
    1235: "the message stream was not found: check message_stream in [email.postmark]",
    1236: "the message stream is archived: use another message_stream",
}
#: Codes about one recipient: that message fails, the others go on.
RECIPIENT_CODES: dict[int, str] = {
    300: "invalid email request (the recipient's address?)",
    406: "inactive recipient (bounced, complained or unsubscribed before)",
}
#: Codes that mean "not now": the message is deferred to the next run.
LATER_CODES: dict[int, str] = {
    100: "Postmark is down for maintenance",
    429: "rate limit exceeded",
}


def classify(code: int, text: str) -> tuple[str, str]:
    """What an ErrorCode means for the message: ("sent" | "setup" | "recipient" |
    "later", the explanation)."""
    if code == 0:
        return "sent", ""
    if code in SETUP_CODES:
        return "setup", SETUP_CODES[code]
    if code == 300 and any(
        w in text.lower() for w in ("'from'", "sender signature", "from address")
    ):
        # 300 also covers a From that is not a verified sender: then every message fails.
        return "setup", "the From address is not a verified sender signature: verify it in Postmark"
    if code in RECIPIENT_CODES:
        return "recipient", RECIPIENT_CODES[code]
    if code in LATER_CODES:
        return "later", LATER_CODES[code]
    if code >= 500:
        return "setup", "Postmark refused the account's setup: see its message"
    return "recipient", "refused by Postmark"


def split_by_size(items: list[bytes], limit: int) -> list[tuple[int, int]]:
    """(start, end) ranges of ``items`` whose JSON array (``[a,b,…]``) is at most
    ``limit`` bytes; an item too big on its own goes alone (Postmark then refuses it)."""
    ranges: list[tuple[int, int]] = []
    start, size = 0, 2
    for i, item in enumerate(items):
        extra = len(item) + (1 if i > start else 0)
        if i > start and size + extra > limit:
            ranges.append((start, i))
            start, size = i, 2
            extra = len(item)
        size += extra
    if items:
        ranges.append((start, len(items)))
    return ranges


class PostmarkMailer(HttpMailer):
    """Sends through Postmark's batch API."""

    #: How reconciliation waits (tests make it instant).
    sleep = staticmethod(time.sleep)

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
        """Send ``batch`` in as many requests as its JSON needs to stay under Postmark's
        50 MB, measured on the bytes that go out; yield each message's outcome."""
        items = [
            json.dumps(self.payload(message, r), ensure_ascii=False, separators=(",", ":")).encode()
            for r in batch
        ]
        for start, end in split_by_size(items, MAX_BATCH_BYTES):
            body = b"[" + b",".join(items[start:end]) + b"]"
            for i, outcome in self._post(body, batch[start:end], message):
                yield start + i, outcome

    def _post(
        self, body: bytes, batch: list[Recipient], message: PreparedMessage
    ) -> Iterable[tuple[int, Outcome]]:
        client = self.client

        def post() -> httpx.Response:
            response = transport_guard(
                NAME,
                lambda: client.post(
                    "/email/batch", content=body, headers={"Content-Type": "application/json"}
                ),
            )
            check_transient(response, NAME)
            return response

        try:
            response = with_retries(post)
        except InDoubt as e:
            # Postmark may have taken the batch: ask its message log before deciding.
            yield from self.reconcile(message, batch, e.reason)
            return
        data = json_or_none(response)
        if response.status_code == 401:
            raise config_error(
                NAME,
                "the server token was refused (HTTP 401)",
                f"check the variable {self.opts['token_env']}",
            )
        if response.status_code != 200 or not isinstance(data, list):
            # 422: the whole request was refused; its ErrorCode says why.
            code = data.get("ErrorCode", -1) if isinstance(data, dict) else -1
            kind, why = classify(code, error_text(response)) if isinstance(code, int) else ("", "")
            if kind == "later":
                raise Transient(f"{NAME} {code}: {error_text(response)}")
            raise config_error(
                NAME,
                f"the batch was refused (HTTP {response.status_code}, ErrorCode {code}: "
                f"{error_text(response)})",
                why or "fix [email] from or [email.postmark] and run again",
            )
        if len(data) != len(batch):
            # Accepted, but which result is whose cannot be told: as if no answer came.
            reason = f"{NAME}: {len(data)} results for {len(batch)} messages"
            yield from self.reconcile(message, batch, reason)
            return
        setup_problem = ""
        for i, result in enumerate(data):
            code = result.get("ErrorCode", -1) if isinstance(result, dict) else -1
            text = str(result.get("Message", "")) if isinstance(result, dict) else ""
            if not isinstance(code, int):
                code = -1
            kind, why = classify(code, text)
            if kind == "sent":
                yield i, Outcome.sent(str(result.get("MessageID", "")))
            elif kind == "setup":
                setup_problem = setup_problem or f"ErrorCode {code}: {text}; {why}"
                yield i, Outcome.released(f"{NAME} {code}: {text}")
            elif kind == "later":
                yield i, Outcome.deferred(f"{NAME} {code}: {text}")
            else:
                yield i, Outcome.failed(f"{NAME} {code}: {text}", bounce=code == 406)
        if setup_problem:
            raise DeliveryError(f"{NAME}: {setup_problem}")

    def reconcile(
        self, message: PreparedMessage, batch: list[Recipient], reason: str
    ) -> Iterable[tuple[int, Outcome]]:
        """After a batch got no answer: each message that Postmark's outbound message
        search shows (by recipient and our ``distrib-edition`` metadata) was sent; the
        others are in doubt (the search may lag, so not finding one proves nothing)."""
        log.warning("%s; asking Postmark's message log which messages it took", reason)
        self.sleep(RECONCILE_WAIT)
        for i, recipient in enumerate(batch):
            found = ""
            try:
                r = self.client.get(
                    "/messages/outbound",
                    params={
                        "recipient": recipient.email,
                        "count": 50,
                        "offset": 0,
                        "metadata_distrib-edition": str(message.edition_id),
                    },
                )
                data = json_or_none(r) if r.status_code == 200 else None
                for m in (data or {}).get("Messages") or []:
                    addresses = {str(a).lower() for a in m.get("Recipients") or []}
                    addresses |= {str(t.get("Email", "")).lower() for t in m.get("To") or []}
                    if recipient.email.lower() in addresses:
                        found = str(m.get("MessageID", "")) or "found in Postmark's log"
                        break
            except httpx.HTTPError:
                pass
            yield i, Outcome.sent(found) if found else self.unanswered(reason)
