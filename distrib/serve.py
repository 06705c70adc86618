"""`distrib serve`: the one-click unsubscribe endpoint (RFC 8058) and a health check.

Every message carries ``List-Unsubscribe: <https://…?token=…>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.  The mailbox provider then
unsubscribes the reader with a POST to that URL, and expects it to work at once,
answered with a 2xx and no redirect (RFC 8058, section 3.2).  The same URL is the
visible link in the footer: a GET shows a page with a button that POSTs, and never
unsubscribes by itself, because link scanners and previewers fetch every URL of a
message (RFC 8058, section 1).

The token in the URL is the HMAC-signed address (distrib.unsubscribe); the key is the
one the send used (``email.secret_env`` or the ledger's own), so a forged or altered
token is refused with a 400.  The public URL comes from ``email.unsubscribe_url``: its
path is matched here, also when a reverse proxy strips a leading part of it (the
public ``/news/unsubscribe`` served as ``/unsubscribe``).
"""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from .errors import ConfigError, ListenError
from .ledger import Ledger, open_ledger
from .unsubscribe import signing_key, verify_token

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("distrib.serve")

HEALTH_PATH = "/healthz"
#: A one-click POST body is one short form field; anything larger is not one.
_MAX_BODY = 64 * 1024

# --- pages ----------------------------------------------------------------------------------

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "confirm_title": "Unsubscribe",
        "confirm": "Stop sending emails from {site} to {address}?",
        "button": "Unsubscribe",
        "done_title": "Unsubscribed",
        "done": "{address} will get no more emails from {site}.",
        "bad": "This unsubscribe link is not valid: it may have been cut short or changed. "
        "Use the link in the latest email, or reply to that email and ask to be removed.",
    },
    "de": {
        "confirm_title": "Abmelden",
        "confirm": "Keine E-Mails von {site} mehr an {address} senden?",
        "button": "Abmelden",
        "done_title": "Abgemeldet",
        "done": "{address} erhält keine E-Mails von {site} mehr.",
        "bad": "Dieser Abmeldelink ist ungültig: Er wurde vielleicht gekürzt oder verändert. "
        "Nutzen Sie den Link in der neuesten E-Mail oder antworten Sie darauf und bitten Sie um Abmeldung.",
    },
    "fr": {
        "confirm_title": "Se désabonner",
        "confirm": "Ne plus envoyer les e-mails de {site} à {address} ?",
        "button": "Se désabonner",
        "done_title": "Désabonnement confirmé",
        "done": "{address} ne recevra plus d’e-mails de {site}.",
        "bad": "Ce lien de désabonnement n’est pas valide : il a peut-être été tronqué ou modifié. "
        "Utilisez le lien du dernier e-mail, ou répondez-y pour demander à être retiré de la liste.",
    },
    "es": {
        "confirm_title": "Darse de baja",
        "confirm": "¿Dejar de enviar los correos de {site} a {address}?",
        "button": "Darse de baja",
        "done_title": "Baja confirmada",
        "done": "{address} ya no recibirá correos de {site}.",
        "bad": "Este enlace para darse de baja no es válido: puede que esté incompleto o modificado. "
        "Use el enlace del último correo, o responda a ese correo y pida la baja.",
    },
    "uk": {
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


# --- server ------------------------------------------------------------------------------


class UnsubscribeServer(ThreadingHTTPServer):
    """The HTTP server; one ledger connection shared by the request threads under a lock."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], settings: Settings, ledger: Ledger):
        self.settings = settings
        self.ledger = ledger
        self.lock = threading.Lock()
        self.key = signing_key(settings, ledger)
        self.route = _Route(settings.email.unsubscribe_url)
        self.text = _TEXT[_language(settings)]
        self.lang = _language(settings)
        super().__init__(address, _Handler)

    def server_close(self) -> None:
        super().server_close()
        with self.lock:
            self.ledger.close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: UnsubscribeServer
    def version_string(self) -> str:
        return "distrib"  # not the Python version: nothing for a scanner to fingerprint
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a client may stall; a thread per client, so bounded

    def do_GET(self) -> None:
        if urlsplit(self.path).path == HEALTH_PATH:
            self._send(HTTPStatus.OK, "ok\n", "text/plain")
            return
        address = self._address()
        if address is None:
            return
        t = self.server.text
        body = (
            f"<p>{_fmt(t['confirm'], address, self.server)}</p>"
            # No action: the form posts to this very URL as the browser sees it, behind
            # any proxy.  The field is the RFC 8058 body, so both POSTs are the same.
            '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
            f'<button type="submit">{html.escape(t["button"])}</button></form>'
        )
        self._page(t["confirm_title"], body)

    # HEAD answers what GET would, without the body (_send skips it) and, like GET,
    # never unsubscribes: link checkers and scanners send HEAD too (RFC 9110, 9.3.2).
    do_HEAD = do_GET

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        try:
            n = int(length) if length else 0
        except ValueError:
            n = -1
        if n < 0 or n > _MAX_BODY:
            self._send(HTTPStatus.BAD_REQUEST, "bad request body\n", "text/plain")
            return
        self.rfile.read(n)
        # The body should be "List-Unsubscribe=One-Click" (form-urlencoded or multipart,
        # RFC 8058 section 3.1), but it is the POST and the signed token that make the
        # request genuine, so a provider that sends another body is not refused.
        address = self._address()
        if address is None:
            return
        with self.server.lock:
            ledger = self.server.ledger
            if not ledger.is_suppressed(address):
                ledger.suppress(address, "unsubscribed", "one-click")
                log.info("unsubscribed one address through the endpoint")
        t = self.server.text
        self._page(t["done_title"], f"<p>{_fmt(t['done'], address, self.server)}</p>")

    def _address(self) -> str | None:
        """The verified address of this request; None after answering 404 or 400."""
        token = self.server.route.token(self.path)
        if token is None:
            self._send(HTTPStatus.NOT_FOUND, "not found\n", "text/plain")
            return None
        address = verify_token(self.server.key, token) if token else None
        if address is None:
            self._send(HTTPStatus.BAD_REQUEST, self.server.text["bad"] + "\n", "text/plain")
        return address

    def _page(self, title: str, body: str) -> None:
        site = html.escape(self.server.settings.site.name)
        page = _PAGE.format(lang=self.server.lang, title=html.escape(title), site=site, body=body)
        self._send(HTTPStatus.OK, page, "text/html")

    def _send(self, status: HTTPStatus, text: str, ctype: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        # the URL carries the token: keep it out of other sites' logs and search engines
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Robots-Tag", "noindex")
        self.send_header(
            "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # Never the path: it holds the token, which names the reader.
        log.info("%s %s %s", self.client_address[0], self.command, code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("serve: " + format, *args)


def _fmt(template: str, address: str, server: UnsubscribeServer) -> str:
    return html.escape(template).format(
        site=f"<strong>{html.escape(server.settings.site.name)}</strong>",
        address=f"<strong>{html.escape(address)}</strong>",
    )


def make_server(
    settings: Settings, ledger_path: str | Path, host: str = "127.0.0.1", port: int = 8025
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
        from .ledger_postgres import open_postgres

        ledger = open_postgres(str(ledger_path))
    else:
        ledger = open_ledger(Path(ledger_path))
    try:
        return UnsubscribeServer((host, port), settings, ledger)
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
) -> None:
    """Run the endpoint until interrupted (Ctrl-C, SIGTERM via the service manager).

    ``on_ready`` is called with the server's URL once it listens (so that a "serving on"
    line is never printed for a port that turns out to be taken)."""
    server = make_server(settings, ledger_path, host, port)
    if on_ready:
        on_ready(server.url)
    log.info("unsubscribe endpoint on %s (public URL %s)", server.url, settings.email.unsubscribe_url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
