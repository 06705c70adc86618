"""Signup with double opt-in: ``POST /subscribe``, ``GET``/``POST /confirm``, and the
outbox that sends the confirmation emails.

``POST /subscribe`` (form-encoded ``email``, optional ``name``, ``newsletter``
repeatable, and the honeypot ``website`` that people leave empty) answers the same page
(``{"status": "pending"}`` with ``Accept: application/json``) whatever the address's
state, so the form tells no one who is subscribed.  For an address that is not an
active subscriber it records the signup in the consent record and queues a
confirmation email in the ledger, in one transaction; the HTTP answer never waits for
a mail server.  `distrib serve`'s sender thread sends the queue within seconds through
the configured mailer, and `distrib run` sends what is left when `serve` is down.

The email's link carries an opaque token (:mod:`distrib.unsubscribe`) for the purpose
``confirm``, naming the address and the chosen newsletters; it expires after
``[signup] confirm_ttl`` (7 days).  ``GET /confirm`` shows a button and changes nothing
(mail scanners fetch every link); ``POST /confirm`` makes the address an active
subscriber, also one that was suppressed: a confirmation from the mailbox itself is
the only way back.  No subscriber row exists before that, so an unconfirmed address
never receives an edition.

A script cannot mail-bomb someone through the form: each client IP may sign up
``[signup] per_ip`` times an hour (then 429; counted in the ledger, so replicas of
serve on one ledger count together), and each address gets at most
``[signup] per_address`` confirmation emails a day (more signups are answered the same
and send nothing).
"""

from __future__ import annotations

import html
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import jinja2

from .ledger import Ledger
from .ledger import now as ledger_now
from .model import Edition, Markers, Recipient
from .schema import k_duration
from .unsubscribe import Tokens, public_base_url
from .web import Request, Response

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("distrib.serve")

HONEYPOT = "website"


def _options(settings: Settings) -> dict[str, Any]:
    raw = settings.data.get("signup") or {}
    out: dict[str, Any] = {
        "base_url": None,
        "confirm_ttl": timedelta(days=7),
        "per_ip": 10,
        "per_address": 3,
        "welcome": True,
    }
    out.update({k: v for k, v in dict(raw).items() if v is not None})
    if isinstance(out["confirm_ttl"], str):
        out["confirm_ttl"] = k_duration(out["confirm_ttl"], None)  # type: ignore[arg-type]
    return out


def base_url(settings: Settings) -> str:
    """The public URL the routes are under (no trailing slash)."""
    return public_base_url(settings)


def newsletter_names(settings: Settings) -> list[str]:
    listed = settings.data.get("newsletters") or []
    return [n["name"] for n in listed] or ["digest"]


# --- the confirmation email -------------------------------------------------------------------

_CONFIRM_HTML = """<!doctype html>
<html><body style="font:16px/1.5 sans-serif;color:#222">
<p>Please confirm that you want {{ newsletters }} from {{ site }} at {{ address }}.</p>
<p><a href="{{ confirm_url }}" style="display:inline-block;padding:.5em 1.2em;background:#222;color:#fff;text-decoration:none;border-radius:4px">Confirm my subscription</a></p>
<p>The link works for {{ days }} days. If you did not ask for this, ignore this email: nothing will be sent to you.</p>
</body></html>
"""

_CONFIRM_TEXT = """Please confirm that you want {{ newsletters }} from {{ site }} at {{ address }}:

{{ confirm_url }}

The link works for {{ days }} days. If you did not ask for this, ignore this email: nothing will be sent to you.
"""


_WELCOME_HTML = """<!doctype html>
<html><body style="font:16px/1.5 sans-serif;color:#222">
<p>Welcome{% if name %}, {{ name }}{% endif %}: {{ address }} is subscribed to {{ newsletters }} from <a href="{{ site_url }}">{{ site }}</a>.</p>
<p>The next edition comes to this address. You can choose what you receive, or pause it for a while, at any time.</p>
<p style="font-size:14px;color:#555">{% if preferences_url %}<a href="{{ preferences_url }}">Your preferences</a> · {% endif %}<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>
"""

_WELCOME_TEXT = """Welcome{% if name %}, {{ name }}{% endif %}: {{ address }} is subscribed to {{ newsletters }} from {{ site }} ({{ site_url }}).

The next edition comes to this address. You can choose what you receive, or pause it for a while, at any time.
{% if preferences_url %}
Your preferences: {{ preferences_url }}
{% endif %}
Unsubscribe: {{ unsubscribe_url }}
"""


def _environment(settings: Settings) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    templates = settings.data.get("templates") or {}
    folder = templates.get("dir") if hasattr(templates, "get") else None
    if folder:
        loaders.append(jinja2.FileSystemLoader(str(folder)))
    loaders.append(
        jinja2.DictLoader(
            {
                "email/confirm.html.j2": _CONFIRM_HTML,
                "email/confirm.txt.j2": _CONFIRM_TEXT,
                "email/welcome.html.j2": _WELCOME_HTML,
                "email/welcome.txt.j2": _WELCOME_TEXT,
            }
        )
    )
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders), autoescape=jinja2.select_autoescape(["html.j2"])
    )


def confirm_url(settings: Settings, tokens: Tokens, address: str, newsletters: list[str]) -> str:
    token = tokens.make(address, ",".join(newsletters), "confirm")
    return f"{base_url(settings)}/confirm?{urlencode({'token': token})}"


def confirmation_edition(
    settings: Settings, row: Any, tokens: Tokens, env: jinja2.Environment | None = None
) -> Edition:
    """The confirmation email of one outbox row, in the shape the mailers send.

    ``env``: the templates' environment, made once per batch by the caller (compiling
    the templates again for each email took most of the sender's time)."""
    chosen = _chosen(row)
    values = {
        "site": settings.site.name,
        "address": row["address"],
        "name": row["name"],
        "newsletters": ", ".join(chosen) or "the newsletter",
        "confirm_url": confirm_url(settings, tokens, row["address"], chosen),
        "days": max(1, _options(settings)["confirm_ttl"].days),
    }
    subject = f"Confirm your subscription to {settings.site.name}"
    return _service_email(settings, row, env, "confirm", subject, values)


def _chosen(row: Any) -> list[str]:
    """The newsletters an outbox row names."""
    return [n for n in str(row["newsletters"]).split(",") if n]


def _service_email(
    settings: Settings,
    row: Any,
    env: jinja2.Environment | None,
    template: str,
    subject: str,
    values: dict[str, Any],
    markers: Markers | None = None,
) -> Edition:
    """An outbox row's email (``email/<template>.html.j2`` and ``.txt.j2``) in the shape
    the mailers send; ``markers`` when its links are filled per recipient."""
    env = env or _environment(settings)
    chosen = _chosen(row)
    return Edition(
        id=int(row["id"]),
        newsletter=chosen[0] if chosen else newsletter_names(settings)[0],
        post_keys=(),
        subject=subject,
        preheader="",
        created=datetime.now(UTC),
        html=env.get_template(f"email/{template}.html.j2").render(values),
        text=env.get_template(f"email/{template}.txt.j2").render(values),
        markers=Markers() if markers is None else markers,
    )


def welcome_edition(settings: Settings, row: Any, env: jinja2.Environment | None = None) -> Edition:
    """The welcome email of one outbox row (kind ``welcome``), queued by the first
    confirmation.  Its unsubscribe and preferences links are the edition's markers,
    filled per recipient by :mod:`distrib.render.message` as in a digest."""
    chosen = _chosen(row)
    markers = Markers.new()
    values = {
        "site": settings.site.name,
        "site_url": settings.site.url,
        "address": markers.email,
        "name": row["name"],
        "newsletters": ", ".join(chosen) or "the newsletter",
        "unsubscribe_url": markers.url,
        "preferences_url": markers.prefs if public_base_url(settings) else "",
    }
    subject = f"Welcome to {settings.site.name}"
    return _service_email(settings, row, env, "welcome", subject, values, markers)


def _outbox_edition(
    settings: Settings, row: Any, tokens: Tokens, env: jinja2.Environment
) -> Edition:
    if row["kind"] == "welcome":
        return welcome_edition(settings, row, env)
    return confirmation_edition(settings, row, tokens, env)


def drain_outbox(settings: Settings, ledger: Ledger, lock: threading.Lock | None = None) -> int:
    """Send the queued confirmation and welcome emails through the configured mailer; the
    number sent.

    Each row is claimed (committed) before the mailer is called and marked after, like
    an edition's deliveries; a transient failure puts it back in the queue."""
    from .adapters import Context, load_mailer
    from .config import mailer_settings
    from .model import DeliveryStatus, Outcome
    from .render.message import prepare_message
    from .unsubscribe import signing_key

    guard = lock or threading.Lock()
    with guard:
        rows = ledger.claim_outbox()
        key = signing_key(settings, ledger) if rows else b""
    if not rows:
        return 0
    cls = load_mailer(settings.email.mailer)
    if cls.handoff:
        with guard:
            for row in rows:
                ledger.mark_outbox(
                    row["id"], "failed", f"the {settings.email.mailer} mailer cannot send one email"
                )
        log.error(
            "signup: the %s mailer hands editions off and cannot send confirmation emails",
            settings.email.mailer,
        )
        return 0
    tokens = Tokens(key)
    env = _environment(settings)
    ctx = Context(settings=settings, now=datetime.now(UTC), ledger=None)
    sent = 0
    try:
        outcomes: list[Outcome] = []
        with cls(mailer_settings(settings), ctx) as mailer:
            for row in rows:
                message = prepare_message(
                    settings, _outbox_edition(settings, row, tokens, env), key=key
                )
                outcomes.clear()
                try:
                    mailer.deliver(
                        message,
                        iter([Recipient(row["address"], row["name"])]),
                        lambda r, o: outcomes.append(o),
                    )
                except Exception as e:  # a mailer that cannot start: try again later
                    outcomes[:] = [Outcome.deferred(str(e))]
                outcome = (
                    outcomes[0] if outcomes else Outcome.deferred("the mailer reported nothing")
                )
                with guard:
                    if outcome.status is DeliveryStatus.SENT:
                        ledger.mark_outbox(row["id"], "sent")
                        sent += 1
                    elif outcome.status is DeliveryStatus.FAILED or row["attempts"] >= 5:
                        ledger.mark_outbox(row["id"], "failed", outcome.error)
                    else:
                        ledger.mark_outbox(row["id"], "queued", outcome.error)
    finally:
        ctx.close()
    return sent


def send_queued(
    settings: Settings,
    ledger: Ledger,
    lock: threading.Lock | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Send the whole queue: batch after batch of :func:`drain_outbox` until the queue is
    empty, a batch sends nothing (what it deferred waits for the next call) or ``stop``
    is set; the number sent.  (One batch alone left all but 50 of a burst of signups
    waiting for serve's next wake-up, and all but 50 for the next `distrib run`.)"""
    total = 0
    while stop is None or not stop.is_set():
        sent = drain_outbox(settings, ledger, lock)
        total += sent
        if not sent:
            break
    return total


# --- the HTTP side ----------------------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


class SignupRoutes:
    """The handlers of /subscribe and /confirm, on the server's ledger and lock."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        lock: threading.Lock,
        tokens: Tokens,
        page: Any,
        wake: threading.Event,
    ):
        self.settings = settings
        self.ledger = ledger
        self.lock = lock
        self.tokens = tokens
        self.page = page
        self.wake = wake
        opts = _options(settings)
        self.ttl: timedelta = opts["confirm_ttl"]
        self.per_address = int(opts["per_address"])
        self.per_ip = int(opts["per_ip"])
        self.every = newsletter_names(settings)
        self.welcome = bool(opts["welcome"])

    def _answer(self, request: Request, status: int, key: str, message: str) -> Response:
        if _wants_json(request):
            return Response(
                status, json.dumps({"status": key, "message": message}) + "\n", "application/json"
            )
        page: Response = self.page(status, "Subscribe", f"<p>{html.escape(message)}</p>")
        return page

    def subscribe(self, request: Request, params: dict[str, str]) -> Response:
        from .addresses import normalise_address

        form = request.form()
        pending = (
            "Almost done: check your inbox for an email with a link to confirm your subscription."
        )
        if not form:
            return self._answer(
                request,
                HTTPStatus.BAD_REQUEST,
                "invalid",
                "Send the form's fields (email, and name if you like) form-encoded.",
            )
        if any(v.strip() for v in form.get(HONEYPOT, [])):
            return self._answer(
                request, HTTPStatus.OK, "pending", pending
            )  # a bot: the same answer, nothing done
        raw = (form.get("email") or [""])[0]
        try:
            if len(raw) > 254:
                raise ValueError("longer than 254 characters")
            address = normalise_address(raw)
        except ValueError as e:
            return self._answer(
                request,
                HTTPStatus.BAD_REQUEST,
                "invalid",
                f"That is not an email address ({e}); check it and try again.",
            )
        name = " ".join((form.get("name") or [""])[0].split())[:100]
        chosen = [n for n in self.every if n in form.get("newsletter", [])]
        if form.get("newsletter") and not chosen:
            return self._answer(
                request,
                HTTPStatus.BAD_REQUEST,
                "invalid",
                "None of the chosen newsletters exists here; choose one of: "
                + ", ".join(self.every)
                + ".",
            )
        if not self._record(request.remote, address, name, chosen):
            return self._answer(
                request,
                HTTPStatus.TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many signups from your network; try again in an hour.",
            )
        return self._answer(request, HTTPStatus.OK, "pending", pending)

    def _record(self, remote: str, address: str, name: str, chosen: list[str]) -> bool:
        """Count the signup against the client's IP (False: over the limit, nothing
        done), then queue a confirmation unless the address is already subscribed to
        what it chose (and not paused) or has had ``per_address`` today.  One hold of
        the lock."""
        with self.lock:
            # In the ledger, so that replicas on one ledger count together.
            if not self.ledger.rate_limit_hit(
                f"signup-ip:{remote}", self.per_ip, timedelta(hours=1)
            ):
                return False
            row = self.ledger.get_subscriber(address)
            already = (
                row is not None
                and row["status"] == "active"
                and row["paused_at"] is None  # paused: its confirmation resumes it
                and not any(self.ledger.is_opted_out(address, n) for n in (chosen or self.every))
            )
            since = ledger_now() - timedelta(days=1)
            if not already and self.ledger.signups_since(address, since) < self.per_address:
                self.ledger.queue_signup(address, name, chosen)
                self.wake.set()
        return True

    def _confirm_token(self, request: Request) -> tuple[Any, str] | None:
        values = parse_qs(request.query).get("token") or request.form().get("token") or []
        token = self.tokens.read(values[0], "confirm") if values else None
        if token is None:
            return None
        expired = (
            token.issued is not None
            and ledger_now().timestamp() - token.issued > self.ttl.total_seconds()
        )
        return token, ("expired" if expired else "ok")

    def _bad_confirm(self, request: Request, found: tuple[Any, str] | None) -> Response:
        if found is not None:
            return self._answer(
                request,
                HTTPStatus.GONE,
                "expired",
                "This confirmation link has expired; sign up again to get a new one.",
            )
        return self._answer(
            request,
            HTTPStatus.BAD_REQUEST,
            "invalid",
            "This confirmation link is not valid: it may have been cut short or changed. "
            "Use the link in the latest email, or sign up again.",
        )

    def confirm_page(self, request: Request, params: dict[str, str]) -> Response:
        found = self._confirm_token(request)
        if found is None or found[1] != "ok":
            return self._bad_confirm(request, found)
        token = found[0]
        form = (
            '<form method="post"><input type="hidden" name="token" value="'
            + html.escape(parse_qs(request.query)["token"][0])
            + '"><button type="submit">Confirm my subscription</button></form>'
        )
        question = (
            f"Send {html.escape(self.settings.site.name)}'s emails to "
            f"<strong>{html.escape(token.address)}</strong>?"
        )
        page: Response = self.page(
            HTTPStatus.OK, "Confirm your subscription", f"<p>{question}</p>{form}"
        )
        return page

    def confirm(self, request: Request, params: dict[str, str]) -> Response:
        found = self._confirm_token(request)
        if found is None or found[1] != "ok":
            return self._bad_confirm(request, found)
        token = found[0]
        chosen = [n for n in (token.newsletter or "").split(",") if n]
        with self.lock:
            first = self.ledger.confirm_subscriber(
                token.address, "", chosen, self.every, welcome=self.welcome
            )
        if first and self.welcome:
            self.wake.set()  # the welcome email goes out within seconds
        return self._answer(
            request, HTTPStatus.OK, "confirmed", f"Thank you: {token.address} is subscribed."
        )


def form_snippet(settings: Settings) -> str:
    """An accessible HTML signup form to paste into a site."""
    action = html.escape(base_url(settings) + "/subscribe")
    every = newsletter_names(settings)
    choices = ""
    if len(every) > 1:
        boxes = "".join(
            f'\n    <label><input type="checkbox" name="newsletter" value="{html.escape(n)}" checked> {html.escape(n)}</label>'
            for n in every
        )
        choices = f"\n  <fieldset>\n    <legend>Newsletters</legend>{boxes}\n  </fieldset>"
    return f"""<form class="distrib-signup" method="post" action="{action}">
  <label for="distrib-email">Email address</label>
  <input id="distrib-email" type="email" name="email" autocomplete="email" required>
  <label for="distrib-name">Name (optional)</label>
  <input id="distrib-name" type="text" name="name" autocomplete="name">{choices}
  <div aria-hidden="true" style="position:absolute;left:-5000px">
    <label for="distrib-{HONEYPOT}">Leave this empty</label>
    <input id="distrib-{HONEYPOT}" type="text" name="{HONEYPOT}" tabindex="-1" autocomplete="off">
  </div>
  <button type="submit">Subscribe</button>
</form>
"""
