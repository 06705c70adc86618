"""`distrib serve`: the one-click unsubscribe endpoint (RFC 8058) and a health check.

With ``[tracking] clicks = true`` it also answers the tracked links of the editions
(``GET /c/<edition>/<link>/<sig>``, :mod:`distrib.tracking`).

Every message carries ``List-Unsubscribe: <https://…?token=…>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.  The mailbox provider then
unsubscribes the reader with a POST to that URL, and expects it to work at once,
answered with a 2xx and no redirect (RFC 8058, section 3.2).  The same URL is the
visible link in the footer: a GET shows a page with a button that POSTs, and never
unsubscribes by itself, because link scanners and previewers fetch every URL of a
message (RFC 8058, section 1).

The token in the URL is the sealed address and newsletter (distrib.unsubscribe); the
key is the one the send used (``email.secret_env`` or the ledger's own), so a forged or
altered token is refused with a 400.  With several ``[[newsletters]]`` a token leaves
its own newsletter only; the page's second button leaves them all.  Every unsubscribe
is committed with a full sync before the answer.  The public URL comes from
``email.unsubscribe_url``: its path is matched here, also when a reverse proxy strips a
leading part of it (the public ``/news/unsubscribe`` served as ``/unsubscribe``).

The HTTP side (limits, timeouts, strict framing) is distrib.web, on waitress; new
routes are added to the server's router.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from .errors import ConfigError, ListenError
from .ledger import Ledger, open_ledger
from .unsubscribe import Token, Tokens, signing_key
from .web import Limits, Request, Response, Router, Server, exact, parse_networks, text

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("distrib.serve")

HEALTH_PATH = "/healthz"

# --- pages ----------------------------------------------------------------------------------

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "confirm_one": "Stop sending {newsletter} from {site} to {address}?",
        "button_all": "Unsubscribe from everything",
        "done_one": "{address} will get no more {newsletter} from {site}.",
        "confirm_title": "Unsubscribe",
        "confirm": "Stop sending emails from {site} to {address}?",
        "button": "Unsubscribe",
        "done_title": "Unsubscribed",
        "done": "{address} will get no more emails from {site}.",
        "bad": "This unsubscribe link is not valid: it may have been cut short or changed. "
        "Use the link in the latest email, or reply to that email and ask to be removed.",
    },
    "de": {
        "confirm_one": "{newsletter} von {site} nicht mehr an {address} senden?",
        "button_all": "Von allem abmelden",
        "done_one": "{address} erhält {newsletter} von {site} nicht mehr.",
        "confirm_title": "Abmelden",
        "confirm": "Keine E-Mails von {site} mehr an {address} senden?",
        "button": "Abmelden",
        "done_title": "Abgemeldet",
        "done": "{address} erhält keine E-Mails von {site} mehr.",
        "bad": "Dieser Abmeldelink ist ungültig: Er wurde vielleicht gekürzt oder verändert. "
        "Nutzen Sie den Link in der neuesten E-Mail oder antworten Sie darauf und bitten Sie um Abmeldung.",
    },
    "fr": {
        "confirm_one": "Ne plus envoyer {newsletter} de {site} à {address} ?",
        "button_all": "Se désabonner de tout",
        "done_one": "{address} ne recevra plus {newsletter} de {site}.",
        "confirm_title": "Se désabonner",
        "confirm": "Ne plus envoyer les e-mails de {site} à {address} ?",
        "button": "Se désabonner",
        "done_title": "Désabonnement confirmé",
        "done": "{address} ne recevra plus d’e-mails de {site}.",
        "bad": "Ce lien de désabonnement n’est pas valide : il a peut-être été tronqué ou modifié. "
        "Utilisez le lien du dernier e-mail, ou répondez-y pour demander à être retiré de la liste.",
    },
    "es": {
        "confirm_one": "¿Dejar de enviar {newsletter} de {site} a {address}?",
        "button_all": "Darse de baja de todo",
        "done_one": "{address} ya no recibirá {newsletter} de {site}.",
        "confirm_title": "Darse de baja",
        "confirm": "¿Dejar de enviar los correos de {site} a {address}?",
        "button": "Darse de baja",
        "done_title": "Baja confirmada",
        "done": "{address} ya no recibirá correos de {site}.",
        "bad": "Este enlace para darse de baja no es válido: puede que esté incompleto o modificado. "
        "Use el enlace del último correo, o responda a ese correo y pida la baja.",
    },
    "uk": {
        "confirm_one": "Більше не надсилати {newsletter} від {site} на {address}?",
        "button_all": "Відписатися від усього",
        "done_one": "{address} більше не отримуватиме {newsletter} від {site}.",
        "confirm_title": "Відписатися",
        "confirm": "Більше не надсилати листи {site} на {address}?",
        "button": "Відписатися",
        "done_title": "Ви відписалися",
        "done": "{address} більше не отримуватиме листів від {site}.",
        "bad": "Це посилання для відписки недійсне: можливо, його обрізано або змінено. "
        "Скористайтеся посиланням з останнього листа або дайте на нього відповідь із проханням відписати вас.",
    },
}

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title} · {site}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em;color:#222}}
button{{font:inherit;padding:.5em 1.2em;border:0;border-radius:4px;background:#222;color:#fff;cursor:pointer}}</style>
</head><body><h1>{title}</h1>{body}</body></html>
"""


def _language(settings: Settings) -> str:
    lang = (settings.site.language or "en").split("-")[0].split("_")[0].lower()
    return lang if lang in _TEXT else "en"


# --- routing ------------------------------------------------------------------------------


class _Route:
    """Where the token is in a request, learnt from the public ``email.unsubscribe_url``."""

    def __init__(self, template: str):
        parts = urlsplit(template)
        path = parts.path or "/"
        self.query_key: str | None = None
        if "{token}" not in path:
            for key, value in parse_qsl(parts.query, keep_blank_values=True):
                if value == "{token}":
                    self.query_key = key
                    break
            else:
                raise ConfigError(
                    "email.unsubscribe_url: has no {token}; add it, as in "
                    "'https://news.example.org/unsubscribe?token={token}'"
                )
        # The public path and each of its tails at a "/", for a proxy that strips a prefix.
        segments = path.rstrip("/").split("/")
        self.patterns = []
        for i in range(1, max(len(segments), 2)):
            tail = "/" + "/".join(segments[i:])
            if i > 1 and all(seg in ("{token}", "{email}") for seg in segments[i:]):
                break  # a tail of placeholders only would match any path
            rx = re.escape(tail).replace(r"\{token\}", r"(?P<token>[^/]+)")
            rx = rx.replace(r"\{email\}", r"[^/]*")
            self.patterns.append(re.compile(rx + "/?"))

    def token(self, raw_path: str) -> str | None:
        """The token of a request to this route, "" when the token is missing, None when
        the request is not for this route."""
        parts = urlsplit(raw_path)
        for rx in self.patterns:
            m = rx.fullmatch(parts.path)
            if m:
                if self.query_key is None:
                    return unquote(m.group("token"))
                values = parse_qs(parts.query).get(self.query_key)
                return values[0] if values else ""
        return None

    def match(self, target: str) -> dict[str, str] | None:
        token = self.token(target)
        return None if token is None else {"token": token}


# --- server ------------------------------------------------------------------------------

#: Every answer: the URL carries the token, so keep it out of other sites' logs, caches
#: and search engines; the pages load nothing and post only to themselves.
_HEADERS = (
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Robots-Tag", "noindex"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),  # and frame-ancestors below: no page may be framed (clickjacking)
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
)


class UnsubscribeServer(Server):
    """The endpoint: its routes on the shared server; one ledger connection shared by
    the handler threads under a lock."""

    def __init__(
        self, host: str, port: int, settings: Settings, ledger: Ledger, limits: Limits | None = None
    ):
        self.settings = settings
        self.ledger = ledger
        self.lock = threading.Lock()
        self.key = signing_key(settings, ledger)
        self.tokens = Tokens(self.key)
        self.route = _Route(settings.email.unsubscribe_url or "")  # serve() checked it is set
        self.lang = _language(settings)
        self.text = _TEXT[self.lang]
        listed = settings.data.get("newsletters") or []
        names = [n["name"] for n in listed] or ["digest"]
        #: with several newsletters a token leaves its own; with one it leaves everything
        self.several = names if len(names) > 1 else []
        proxies = (settings.data.get("serve") or {}).get("trusted_proxies") or ()
        router = Router(_HEADERS, parse_networks(proxies))  # validated by the config
        router.add({"GET"}, exact(HEALTH_PATH), lambda req, _: text(HTTPStatus.OK, "ok\n"))
        from .tracking import ClickRoutes

        # Before the unsubscribe route, whose path tails could match anything; served
        # also with tracking turned off, so that the links of editions sent before work.
        clicks = ClickRoutes(ledger, self.lock)
        router.add({"GET"}, clicks.match, clicks.click)
        # Signup with double opt-in (distrib.signup); its emails go out from a thread.
        from .signup import SignupRoutes, base_url

        # The routes answer under the public base URL's path too, for a proxy that passes
        # https://example.org/news/subscribe on as /news/subscribe.
        router.prefix = urlsplit(base_url(settings)).path.rstrip("/")

        self.wake = threading.Event()
        self.stopping = threading.Event()
        signup = SignupRoutes(
            settings, ledger, self.lock, self.tokens, self._status_page, self.wake
        )
        router.add({"POST"}, exact("/subscribe"), signup.subscribe)
        router.add({"GET"}, exact("/confirm"), signup.confirm_page)
        router.add({"POST"}, exact("/confirm"), signup.confirm)
        # The reader's own page: newsletters, pause, unsubscribe from all (distrib.preferences).
        from .preferences import PATH, PreferencesRoutes

        prefs = PreferencesRoutes(settings, ledger, self.lock, self.tokens, self._status_page)
        router.add({"GET"}, exact(PATH), prefs.show)
        router.add({"POST"}, exact(PATH), prefs.apply)
        from .hooks import HookRoutes

        hooks = HookRoutes(settings, ledger, self.lock)
        router.add({"POST"}, exact("/hooks/postmark"), hooks.postmark)
        router.add({"POST"}, exact("/hooks/mailgun"), hooks.mailgun)
        router.add({"POST"}, exact("/hooks/ses"), hooks.ses_hook)
        # The unsubscribe URL last: one with its token at the root (https://x/{token})
        # matches any one-segment path, and must not hide the fixed paths above.
        router.add({"GET"}, self.route.match, self._confirm_page)
        router.add({"POST"}, self.route.match, self._unsubscribe)
        self.router = router
        super().__init__(router, host, port, limits, on_close=self._close_ledger)
        # The WAL is checkpointed by a thread of the ledger, not by the commit that
        # crosses the limit: that commit holds the lock every handler waits for, and a
        # checkpoint's syncs took seconds on a busy disk (benchmarks/signup.py).
        self._checkpoints = contextlib.ExitStack()
        self._checkpoints.enter_context(ledger.checkpoints_in_background())
        self.sender = threading.Thread(target=self._send_queued, name="distrib-outbox", daemon=True)
        self.sender.start()

    def _send_queued(self) -> None:
        """Send the queued confirmation emails within seconds of their signup."""
        from .signup import send_queued

        self.wake.set()  # what a stopped server left queued goes out at start
        while not self.stopping.is_set():
            self.wake.wait(5.0)
            self.wake.clear()
            if self.stopping.is_set():
                return
            try:
                send_queued(self.settings, self.ledger, self.lock, self.stopping)
            except Exception as e:  # keep serving; the next wake-up tries again
                log.error("serve: sending confirmation emails failed: %s", e)

    def _close_ledger(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.sender.is_alive() and self.sender is not threading.current_thread():
            self.sender.join(30)
        self._checkpoints.close()
        with self.lock:
            self.ledger.close()

    # handlers ---------------------------------------------------------------------------

    def _token(self, params: dict[str, str]) -> Token | None:
        return self.tokens.read(params["token"]) if params["token"] else None

    def _bad(self) -> Response:
        return text(HTTPStatus.BAD_REQUEST, self.text["bad"] + "\n")

    def _one_list(self, token: Token) -> str | None:
        """The newsletter this token leaves alone, or None when it leaves everything
        (one newsletter configured, a first-format token, a newsletter no longer
        configured: the reader asked to stop, so nothing is sent)."""
        return token.newsletter if token.newsletter in self.several else None

    def _confirm_page(self, request: Request, params: dict[str, str]) -> Response:
        # GET (and HEAD): a page with a button; never unsubscribes, because link scanners
        # and previewers fetch every URL of a message (RFC 8058, section 1).
        token = self._token(params)
        if token is None:
            return self._bad()
        t = self.text
        one = self._one_list(token)
        # No action: the form posts to this very URL as the browser sees it, behind any
        # proxy.  The field is the RFC 8058 body, so both POSTs are the same.
        form = (
            '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
            f'<button type="submit">{html.escape(t["button"])}</button>'
        )
        if one is None:
            question = _fmt(t["confirm"], token.address, self)
        else:
            question = _fmt(t["confirm_one"], token.address, self, one)
            # Leaving every list is a separate, explicit choice: a second button.
            form += f' <button type="submit" name="scope" value="all">{html.escape(t["button_all"])}</button>'
        return self._page(t["confirm_title"], f"<p>{question}</p>{form}</form>")

    def _unsubscribe(self, request: Request, params: dict[str, str]) -> Response:
        # The body should be "List-Unsubscribe=One-Click" (form-urlencoded or multipart,
        # RFC 8058 section 3.1), but it is the POST and the signed token that make the
        # request genuine, so a provider that sends another body is not refused.
        token = self._token(params)
        if token is None:
            return self._bad()
        one = self._one_list(token)
        if one is not None and request.form().get("scope") == ["all"]:
            one = None
        with self.lock:
            ledger = self.ledger
            if one is not None:
                if ledger.opt_out(token.address, one, "one-click"):
                    log.info("one address left one newsletter through the endpoint")
            elif not ledger.is_suppressed(token.address):
                ledger.suppress(token.address, "unsubscribed", "one-click")
                log.info("unsubscribed one address through the endpoint")
        # Both writes are committed with a full sync before this answer is sent.
        t = self.text
        done = (
            _fmt(t["done"], token.address, self)
            if one is None
            else _fmt(t["done_one"], token.address, self, one)
        )
        return self._page(t["done_title"], f"<p>{done}</p>")

    def _status_page(self, status: int, title: str, body: str) -> Response:
        page = self._page(title, body)
        page.status = status
        return page

    def _page(self, title: str, body: str) -> Response:
        site = html.escape(self.settings.site.name)
        page = _PAGE.format(lang=self.lang, title=html.escape(title), site=site, body=body)
        return Response(HTTPStatus.OK, page, "text/html")


def _fmt(template: str, address: str, server: UnsubscribeServer, newsletter: str = "") -> str:
    return html.escape(template).format(
        site=f"<strong>{html.escape(server.settings.site.name)}</strong>",
        address=f"<strong>{html.escape(address)}</strong>",
        newsletter=f"<strong>{html.escape(newsletter)}</strong>",
    )


def make_server(
    settings: Settings,
    ledger_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8025,
    limits: Limits | None = None,
) -> UnsubscribeServer:
    """The endpoint, bound and ready for ``serve_forever()`` (port 0: any free port).
    ``ledger_path``: the SQLite file, or the PostgreSQL URL of ``[ledger] url``.

    Raises ConfigError when ``email.unsubscribe_url`` is unset or has no ``{token}``.
    """
    if not settings.email.unsubscribe_url:
        raise ConfigError(
            "email.unsubscribe_url: missing; set it to the public URL of this endpoint, "
            "such as 'https://news.example.org/unsubscribe?token={token}'"
        )
    _Route(settings.email.unsubscribe_url)  # refuse a bad URL before opening anything
    ledger: Ledger
    if str(ledger_path).startswith(("postgresql://", "postgres://")):
        # [ledger] url: replicas behind a load balancer share the one database
        from .ledger.postgres import open_postgres

        ledger = open_postgres(str(ledger_path))
    else:
        ledger = open_ledger(Path(ledger_path))
    try:
        return UnsubscribeServer(host, port, settings, ledger, limits)
    except OSError as e:
        ledger.close()
        raise ListenError(host, port, e) from None
    except BaseException:
        ledger.close()
        raise


def serve(
    settings: Settings,
    ledger_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8025,
    *,
    on_ready: Callable[[str], None] | None = None,
    limits: Limits | None = None,
) -> None:
    """Run the endpoint until interrupted (Ctrl-C, SIGTERM via the service manager).

    ``on_ready`` is called with the server's URL once it listens (so that a "serving on"
    line is never printed for a port that turns out to be taken)."""
    server = make_server(settings, ledger_path, host, port, limits)
    if on_ready:
        on_ready(server.url)
    log.info(
        "unsubscribe endpoint on %s (public URL %s)", server.url, settings.email.unsubscribe_url
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
