"""The preferences page of `distrib serve`: ``GET`` and ``POST /preferences``.

Every edition's footer links to ``/preferences?token=…`` beside the unsubscribe link
(:mod:`distrib.render.message` fills the link per recipient).  The token is sealed for
the purpose ``preferences`` (:mod:`distrib.unsubscribe`): an unsubscribe or
confirmation token does not open this page, nor does this page's token open theirs.

``GET`` shows the reader's choices and changes nothing (mail scanners fetch every link):
the newsletters of ``[[newsletters]]`` as checkboxes (checked: receiving), a *pause*
that stops every edition until the reader comes back and unchecks it (a paused
subscriber stays subscribed, not suppressed), and a separate "unsubscribe from
everything" button.  ``POST`` (form-encoded, the token in the form: never the query's) applies the choice;
each change is an event of the subscriber's consent record, and all of it is committed
with a full sync before the answer, so a kill right after the 200 keeps it.

An address that is not an active subscriber (unsubscribed, bounced, complained, erased
by ``subscribers forget``, or never confirmed) gets a page that says so and changes
nothing: a suppressed address comes back only through a new confirmation.
"""

from __future__ import annotations

import html
import logging
import threading
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from .ledger import Ledger
from .unsubscribe import Token, Tokens
from .web import Request, Response

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("distrib.serve")

PATH = "/preferences"
TITLE = "Your email preferences"


def _names(settings: Settings) -> list[str]:
    listed = settings.data.get("newsletters") or []
    return [n["name"] for n in listed] or ["digest"]


class PreferencesRoutes:
    """The handlers of /preferences, on the server's ledger and lock."""

    def __init__(
        self, settings: Settings, ledger: Ledger, lock: threading.Lock, tokens: Tokens, page: Any
    ):
        self.settings = settings
        self.ledger = ledger
        self.lock = lock
        self.tokens = tokens
        self.page = page
        self.every = _names(settings)
        self.site = html.escape(settings.site.name)

    # --- pieces -------------------------------------------------------------------------

    def _raw_token(self, request: Request) -> str:
        values = request.form().get("token") or parse_qs(request.query).get("token") or []
        return values[0] if values else ""

    def _show(self, status: int, title: str, body: str) -> Response:
        page: Response = self.page(status, title, body)
        return page

    def _bad(self) -> Response:
        return self._show(
            HTTPStatus.BAD_REQUEST,
            TITLE,
            "<p>This preferences link is not valid: it may have been cut short or changed. "
            "Use the link at the foot of the latest email.</p>",
        )

    def _not_subscribed(self, token: Token) -> Response:
        return self._show(
            HTTPStatus.OK,
            TITLE,
            f"<p><strong>{html.escape(token.address)}</strong> is not subscribed to "
            f"<strong>{self.site}</strong>, so there is nothing to change here and nothing "
            "was changed. To receive its emails again, sign up on the site and confirm "
            "from your inbox. If emails still reach this address, the unsubscribe link at "
            "their foot stops them.</p>",
        )

    def _state(self, address: str) -> tuple[set[str], bool] | None:
        """The newsletters ``address`` left and whether it is paused; None when it is not
        an active subscriber."""
        with self.lock:
            row = self.ledger.get_subscriber(address)
            if row is None or row["status"] != "active":
                return None
            return self.ledger.newsletters_left(address), row["paused_at"] is not None

    def _label(self, newsletter: str) -> str:
        """A newsletter as the reader knows it: the site's name when it is the only one."""
        return self.settings.site.name if self.every == ["digest"] else newsletter

    def _form(self, raw_token: str, left: set[str], paused: bool) -> str:
        token = html.escape(raw_token, quote=True)
        boxes = "".join(
            f'<div><input type="checkbox" id="nl-{i}" name="newsletter" value="{html.escape(n, quote=True)}"'
            f"{'' if n in left else ' checked'}> "
            f'<label for="nl-{i}">{html.escape(self._label(n))}</label></div>'
            for i, n in enumerate(self.every)
        )
        pause = (
            '<div><input type="checkbox" id="pause" name="pause" value="1"'
            f"{' checked' if paused else ''}> "
            '<label for="pause">Pause all emails: you receive nothing until you come back '
            "here and uncheck this</label></div>"
        )
        state = (
            "<p><strong>Your emails are paused.</strong> Uncheck the pause and save to "
            "receive them again.</p>"
            if paused
            else ""
        )
        return (
            f'{state}<form method="post">'
            f'<input type="hidden" name="token" value="{token}">'
            f"<fieldset><legend>Newsletters you receive</legend>{boxes}</fieldset>"
            f"<fieldset><legend>Pause</legend>{pause}</fieldset>"
            '<p><button type="submit" name="action" value="save">Save my choices</button></p>'
            "</form>"
            '<form method="post">'
            f'<input type="hidden" name="token" value="{token}">'
            '<p><button type="submit" name="action" value="unsubscribe">'
            "Unsubscribe from everything</button></p></form>"
        )

    # --- handlers -----------------------------------------------------------------------

    def show(self, request: Request, params: dict[str, str]) -> Response:
        """GET: the reader's choices as a form; changes nothing."""
        raw = self._raw_token(request)
        token = self.tokens.read(raw, "preferences") if raw else None
        if token is None:
            return self._bad()
        state = self._state(token.address)
        if state is None:
            return self._not_subscribed(token)
        intro = (
            f"<p>Emails from <strong>{self.site}</strong> to "
            f"<strong>{html.escape(token.address)}</strong>.</p>"
        )
        return self._show(HTTPStatus.OK, TITLE, intro + self._form(raw, *state))

    def apply(self, request: Request, params: dict[str, str]) -> Response:
        """POST: apply the choice, durably, then say what it is now."""
        form = request.form()
        # Only from the form: a POST with the token in its query alone (an empty, JSON or
        # multipart body) would otherwise apply an empty choice, leaving every newsletter.
        raw = (form.get("token") or [""])[0]
        token = self.tokens.read(raw, "preferences") if raw else None
        if token is None:
            return self._bad()
        action = (form.get("action") or ["save"])[0]
        if action == "unsubscribe":
            return self._unsubscribe(token)
        if action != "save":
            return self._show(
                HTTPStatus.BAD_REQUEST,
                TITLE,
                "<p>Choose <em>Save my choices</em> or <em>Unsubscribe from everything</em>.</p>",
            )
        wanted = [n for n in self.every if n in form.get("newsletter", [])]
        paused = bool((form.get("pause") or [""])[0])
        with self.lock:
            changes = self.ledger.update_preferences(token.address, self.every, wanted, paused)
        if changes is None:
            return self._not_subscribed(token)
        if changes:
            log.info("preferences: one subscriber changed %d choice(s)", len(changes))
        return self._show(HTTPStatus.OK, "Preferences saved", self._summary(raw, wanted, paused))

    def _summary(self, raw: str, wanted: list[str], paused: bool) -> str:
        if paused:
            now = "Your emails are paused: you will receive nothing until you resume."
        elif wanted:
            now = (
                "You will receive: " + ", ".join(html.escape(self._label(n)) for n in wanted) + "."
            )
        else:
            now = "You chose no newsletter, so you will receive nothing."
        # relative: the page may be served under a proxy's prefix
        again = html.escape(f"preferences?{urlencode({'token': raw})}", quote=True)
        return f'<p>{now}</p><p><a href="{again}">Change your preferences again</a></p>'

    def _unsubscribe(self, token: Token) -> Response:
        with self.lock:
            done = self.ledger.unsubscribe_everything(token.address, "preferences")
        if not done:
            return self._not_subscribed(token)
        log.info("preferences: one subscriber unsubscribed from everything")
        return self._show(
            HTTPStatus.OK,
            "Unsubscribed",
            f"<p><strong>{html.escape(token.address)}</strong> will get no more emails from "
            f"<strong>{self.site}</strong>.</p>",
        )
