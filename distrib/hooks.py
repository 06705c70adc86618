"""Bounce and complaint webhooks of `distrib serve`: ``POST /hooks/postmark``,
``POST /hooks/mailgun`` and ``POST /hooks/ses`` (Amazon SES through SNS).

Each call is authenticated before its body is read for anything else: Postmark's with
HTTP basic auth (the URL set in Postmark's webhook carries ``user:password``, the value
of the environment variable ``[webhooks] postmark_auth_env`` names), Mailgun's with the
HMAC-SHA256 of ``timestamp + token`` under the webhook signing key
(``[webhooks] mailgun_key_env``), refusing a timestamp more than 5 minutes away and a
token already seen (a replay); SNS's by the message's RSA signature (SignatureVersion 1
and 2, the certificate fetched only from an SNS host), refusing a ``Timestamp`` older
than ``[webhooks] sns_max_age`` (1 hour) or more than 5 minutes ahead, and answering a
``MessageId`` already handled without handling it again.  An unsigned, forged or replayed call is answered 403 and
changes nothing; a route whose secret is not configured answers 404.

A hard bounce or a complaint suppresses the address at once; a soft bounce after
``[webhooks] soft_bounces`` in a row.  The suppression and its consent-record event are
committed with a full sync *before* the 200, so a kill right after the answer loses
nothing (the provider would retry a call that got no answer).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from .ledger import Ledger
from .web import Request, Response, text

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("distrib.serve")

#: Mailgun's signatures older (or newer) than this are refused as replays.
MAILGUN_WINDOW = 300.0
#: New SNS signing-certificate URLs fetched at most this many a minute (SNS signs with
#: one certificate for months): forged messages, each naming a URL of its own on an SNS
#: host, cannot make serve fetch for every one; past it the answer is a 503, which SNS
#: retries.
CERT_FETCHES_PER_MINUTE = 5
#: SNS messages whose Timestamp is older than this (seconds; ``[webhooks] sns_max_age``)
#: are refused as replays; SNS retries a delivery for about an hour by default.
SNS_MAX_AGE = 3600.0
#: ... and those dated more than this ahead of our clock.
SNS_FUTURE = 300.0

#: Postmark's bounce types (https://postmarkapp.com/developer/api/bounce-api#bounce-types)
_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Blocked"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError"}


def _options(settings: Settings) -> dict[str, Any]:
    raw = dict(settings.data.get("webhooks") or {})
    defaults = {
        "postmark_auth_env": None,
        "mailgun_key_env": None,
        "soft_bounces": 3,
        "ses": False,
        "ses_topic_arn": None,
        "sns_cert_url_prefix": None,
        "sns_max_age": None,
    }
    return defaults | {k: v for k, v in raw.items() if v is not None}


def _seconds(value: Any) -> float:
    """A duration option (a timedelta from the config, '1h', or seconds) in seconds."""
    if isinstance(value, str):
        from .schema import k_duration

        value = k_duration(value, None)  # type: ignore[arg-type]
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


def _secret(name: str | None) -> str | None:
    import os

    return (os.environ.get(name) or None) if name else None


class _TooManyFetches(Exception):
    """More new certificate URLs than CERT_FETCHES_PER_MINUTE."""


class HookRoutes:
    def __init__(self, settings: Settings, ledger: Ledger, lock: threading.Lock):
        opts = _options(settings)
        self.ledger = ledger
        self.lock = lock
        self.postmark_auth = _secret(opts["postmark_auth_env"])
        self.mailgun_key = _secret(opts["mailgun_key_env"])
        self.soft = max(1, int(opts["soft_bounces"]))
        self.seen: dict[str, float] = {}
        self.ses = bool(opts["ses"])
        self.topic = opts["ses_topic_arn"]
        self.cert_prefix = opts["sns_cert_url_prefix"]
        self.certs: dict[str, Any] = {}
        self.fetched: list[float] = []  # when the recent certificate fetches began
        #: SNS MessageIds handled lately (a message older than sns_max_age is refused anyway)
        self.sns_seen: dict[str, float] = {}
        age = opts["sns_max_age"]
        self.sns_max_age = SNS_MAX_AGE if age is None else float(_seconds(age))

    def _record(self, address: str, event: str, how: str, reason: str) -> None:
        from .addresses import normalise_address

        try:
            address = normalise_address(address)
        except ValueError:
            return
        with self.lock:
            status = self.ledger.provider_event(address, event, how, reason, self.soft)
        if status:
            log.info("webhook %s: one address suppressed (%s)", how, status)

    # --- Postmark ---------------------------------------------------------------------

    def postmark(self, request: Request, params: dict[str, str]) -> Response:
        if self.postmark_auth is None:
            return text(HTTPStatus.NOT_FOUND, "not found\n")
        given = request.headers.get("authorization", "")
        try:
            scheme, _, value = given.partition(" ")
            ok = scheme.lower() == "basic" and hmac.compare_digest(
                base64.b64decode(value.strip(), validate=True), self.postmark_auth.encode("utf-8")
            )
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            return Response(
                HTTPStatus.FORBIDDEN,
                "forbidden: wrong or missing basic auth\n",
                headers=[("WWW-Authenticate", 'Basic realm="distrib"')],
            )
        try:
            body = json.loads(request.body)
            record = str(body.get("RecordType", ""))
            kind = str(body.get("Type", ""))
            address = str(body["Email"])
        except (ValueError, KeyError, AttributeError, TypeError):
            return text(
                HTTPStatus.BAD_REQUEST,
                "not a Postmark bounce or spam complaint (JSON with RecordType, Type, Email)\n",
            )
        reason = str(body.get("Description") or body.get("Details") or kind)
        if record == "SpamComplaint" or kind == "SpamComplaint":
            self._record(address, "complained", "postmark", reason)
        elif record == "Bounce" and kind in _POSTMARK_HARD:
            self._record(address, "bounced", "postmark", f"{kind}: {reason}")
        elif record == "Bounce" and kind in _POSTMARK_SOFT:
            self._record(address, "soft_bounce", "postmark", f"{kind}: {reason}")
        elif record == "Delivery":
            self._record(address, "delivered", "postmark", "")
        return text(HTTPStatus.OK, "ok\n")

    # --- Mailgun ----------------------------------------------------------------------

    def _mailgun_signed(self, sig: Any) -> bool:
        if self.mailgun_key is None or not isinstance(sig, dict):
            return False
        timestamp, token, signature = (
            str(sig.get(k, "")) for k in ("timestamp", "token", "signature")
        )
        if not (timestamp.isdigit() and token and signature):
            return False
        expected = hmac.new(
            self.mailgun_key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            return False
        t = time.time()
        if abs(t - int(timestamp)) > MAILGUN_WINDOW:
            return False
        with self.lock:
            for old in [k for k, at in self.seen.items() if t - at > 2 * MAILGUN_WINDOW]:
                del self.seen[old]
            if token in self.seen:
                return False
            self.seen[token] = t
        return True

    def mailgun(self, request: Request, params: dict[str, str]) -> Response:
        if self.mailgun_key is None:
            return text(HTTPStatus.NOT_FOUND, "not found\n")
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not self._mailgun_signed(body.get("signature")):
            return text(
                HTTPStatus.FORBIDDEN, "forbidden: missing, wrong, old or replayed signature\n"
            )
        data = body.get("event-data")
        if not isinstance(data, dict) or not data.get("recipient"):
            return text(
                HTTPStatus.BAD_REQUEST,
                "not a Mailgun event (event-data with event and recipient)\n",
            )
        event, address = str(data.get("event", "")), str(data["recipient"])
        status: dict[str, Any] = (
            data["delivery-status"] if isinstance(data.get("delivery-status"), dict) else {}
        )
        reason = str(
            data.get("reason") or status.get("description") or status.get("message") or event
        )
        if event == "complained":
            self._record(address, "complained", "mailgun", reason)
        elif event == "failed" and data.get("severity") == "permanent":
            self._record(address, "bounced", "mailgun", reason)
        elif event == "failed":
            self._record(address, "soft_bounce", "mailgun", reason)
        elif event == "delivered":
            self._record(address, "delivered", "mailgun", "")
        return text(HTTPStatus.OK, "ok\n")

    # --- Amazon SES through SNS -------------------------------------------------------

    def _sns_url_ok(self, url: str) -> bool:
        if self.cert_prefix:
            return url.startswith(self.cert_prefix)
        return _SNS_URL.match(url) is not None

    def _certificate(self, url: str) -> Any:
        """The signing certificate at ``url`` (an SNS host only), fetched once."""
        from cryptography import x509

        if url not in self.certs:
            import httpx

            self._may_fetch()
            r = httpx.get(url, timeout=10, follow_redirects=False)
            r.raise_for_status()
            if len(self.certs) > 100:
                self.certs.clear()
            self.certs[url] = x509.load_pem_x509_certificate(r.content)
        return self.certs[url]

    def _may_fetch(self) -> None:
        t = time.monotonic()
        with self.lock:
            self.fetched = [at for at in self.fetched if t - at < 60.0]
            if len(self.fetched) >= CERT_FETCHES_PER_MINUTE:
                raise _TooManyFetches
            self.fetched.append(t)

    def _sns_verified(self, msg: dict[str, Any]) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        kind = msg.get("Type")
        version = str(msg.get("SignatureVersion", ""))
        url = str(msg.get("SigningCertURL") or msg.get("SigningCertUrl") or "")
        if kind not in _SNS_FIELDS or version not in ("1", "2") or not self._sns_url_ok(url):
            return False
        if self.topic and msg.get("TopicArn") != self.topic:
            return False
        fields = [f for f in _SNS_FIELDS[kind] if f in msg or f not in ("Subject",)]
        if any(not isinstance(msg.get(f), str) for f in fields):
            return False
        signed = "".join(f"{f}\n{msg[f]}\n" for f in fields).encode("utf-8")
        try:
            signature = base64.b64decode(str(msg.get("Signature", "")), validate=True)
            key = self._certificate(url).public_key()
            key.verify(
                signature,
                signed,
                padding.PKCS1v15(),
                hashes.SHA1() if version == "1" else hashes.SHA256(),
            )
        except (InvalidSignature, binascii.Error, ValueError, TypeError, AttributeError):
            return False
        except _TooManyFetches:
            raise
        except Exception as e:  # the certificate could not be fetched: not verified
            log.warning("webhook ses: no signing certificate (%s)", type(e).__name__)
            return False
        return True

    def _refused(self, msg: Any) -> Response | None:
        """The answer to an SNS message that is not verified; None for one that is."""
        try:
            if isinstance(msg, dict) and self._sns_verified(msg):
                return None
        except _TooManyFetches:
            log.warning("webhook ses: too many new signing certificate URLs; answered 503")
            return Response(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "busy: too many new signing certificates this minute; try again later\n",
                headers=[("Retry-After", "60")],
            )
        return text(HTTPStatus.FORBIDDEN, "forbidden: not an SNS message with a valid signature\n")

    def _sns_timely(self, msg: dict[str, Any]) -> bool:
        """The message's signed Timestamp is within the window: not older than
        ``[webhooks] sns_max_age`` (a replay of an old message) nor more than
        :data:`SNS_FUTURE` ahead of this clock."""
        from datetime import UTC, datetime

        try:
            sent = datetime.fromisoformat(str(msg.get("Timestamp", "")))
        except ValueError:
            return False
        if sent.tzinfo is None:
            sent = sent.replace(tzinfo=UTC)  # SNS writes UTC ("...Z")
        age = time.time() - sent.timestamp()
        return -SNS_FUTURE <= age <= self.sns_max_age

    def _sns_first_time(self, mid: str) -> bool:
        """False for a MessageId already handled (SNS delivers at least once)."""
        with self.lock:
            t = time.time()
            seen = self.sns_seen
            for old in [k for k, at in seen.items() if t - at > 2 * self.sns_max_age]:
                del seen[old]
            if mid in seen:
                return False
            seen[mid] = t
        return True

    def _sns_subscribe(self, msg: dict[str, Any], mid: str) -> Response:
        """Follow a SubscriptionConfirmation's SubscribeURL (an SNS URL only)."""
        url = str(msg.get("SubscribeURL", ""))
        if not self._sns_url_ok(url):
            return text(HTTPStatus.FORBIDDEN, "forbidden: SubscribeURL is not an SNS URL\n")
        import httpx

        try:
            httpx.get(url, timeout=10, follow_redirects=False).raise_for_status()
        except httpx.HTTPError as e:
            with self.lock:
                self.sns_seen.pop(mid, None)
            return text(
                HTTPStatus.BAD_GATEWAY,
                f"could not confirm the subscription ({type(e).__name__})\n",
            )
        log.info("webhook ses: SNS subscription confirmed")
        return text(HTTPStatus.OK, "subscribed\n")

    def _ses_bounce(self, note: dict[str, Any]) -> None:
        bounce = note.get("bounce") or {}
        event = "bounced" if bounce.get("bounceType") == "Permanent" else "soft_bounce"
        for r in bounce.get("bouncedRecipients") or []:
            reason = f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}: {r.get('diagnosticCode', '')}"
            self._record(str(r.get("emailAddress", "")), event, "ses", reason)

    def _ses_complaint(self, note: dict[str, Any]) -> None:
        complaint = note.get("complaint") or {}
        for r in complaint.get("complainedRecipients") or []:
            self._record(
                str(r.get("emailAddress", "")),
                "complained",
                "ses",
                str(complaint.get("complaintFeedbackType") or "complaint"),
            )

    def _ses_notification(self, msg: dict[str, Any]) -> Response:
        """An SES bounce or complaint in a Notification's Message; anything else is ignored."""
        try:
            note = json.loads(msg["Message"])
        except ValueError:
            return text(HTTPStatus.OK, "ok (not an SES notification)\n")
        if not isinstance(note, dict):
            return text(HTTPStatus.OK, "ok (not an SES notification)\n")
        kind = note.get("notificationType") or note.get("eventType")
        if kind == "Bounce":
            self._ses_bounce(note)
        elif kind == "Complaint":
            self._ses_complaint(note)
        return text(HTTPStatus.OK, "ok\n")

    def ses_hook(self, request: Request, params: dict[str, str]) -> Response:
        if not self.ses:
            return text(HTTPStatus.NOT_FOUND, "not found\n")
        try:
            msg = json.loads(request.body)
        except ValueError:
            msg = None
        refused = self._refused(msg)  # not signed by SNS (403), or too many new certificates
        if refused is not None:
            return refused
        if not self._sns_timely(msg):
            return text(
                HTTPStatus.FORBIDDEN, "forbidden: the SNS message's Timestamp is not recent\n"
            )
        mid = str(msg.get("MessageId", ""))
        if not self._sns_first_time(mid):
            return text(HTTPStatus.OK, "ok (already handled)\n")
        if msg["Type"] == "SubscriptionConfirmation":
            return self._sns_subscribe(msg, mid)
        if msg["Type"] != "Notification":
            return text(HTTPStatus.OK, "ok\n")
        return self._ses_notification(msg)


#: The only place signing certificates and subscription URLs may come from.
_SNS_URL = re.compile(r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[^?#]*(\?[^#]*)?$")

#: The fields signed, in order, per message type (Subject only when present).
_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
