"""The HTTP layer of `distrib serve`: a small route table on the waitress server.

`distrib serve` is a public endpoint, so the HTTP work is left to waitress, a well-kept
pure-Python WSGI server: it reads requests with a strict parser (one Content-Length of
digits only, chunked bodies decoded by the server, a malformed request answered 400 and
the connection closed), buffers each whole request before the application sees it, and
does its socket work in one event loop, so a connection waiting for bytes holds a file
descriptor, not a thread.  On top of it this module adds what a public endpoint needs
and waitress leaves to its user:

* ambiguous framing is refused (400, connection closed): ``Content-Length`` beside
  ``Transfer-Encoding`` (RFC 9112 section 6.3 lets a server reject it and requires the
  connection closed after it), ``Transfer-Encoding`` on an HTTP/1.0 request, and a GET or
  HEAD with a body;
* a request must arrive in time: its headers within ``header_timeout`` of its first
  byte (or of the connection, for the first one), its body within ``body_timeout`` of
  the headers, and a kept-alive connection may idle ``idle_timeout``; checked every
  second, so slowloris-style connections do not pile up;
* a connection cap: at the cap the oldest connections that have not sent a whole
  request are closed to make room, so a flood of slow connections cannot lock out a
  health check; the listen backlog is large, so a burst waits instead of being reset;
* no tracebacks for clients that go away, and no request path (it holds the reader's
  token) in the server's log lines;
* the client's address behind a reverse proxy (:func:`client_address`): taken from
  ``X-Forwarded-For`` or ``Forwarded`` only when the peer is one of the trusted
  proxies (``[serve] trusted_proxies``), never from a header a client sent directly.

Routes are added to a :class:`Router` with a method set, a path matcher and a handler
that takes a :class:`Request` and returns a :class:`Response`; forms and webhooks of
later routes plug in the same way.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer

log = logging.getLogger("distrib.serve")

WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- limits ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may take of the server."""

    #: open connections at most; beyond it the oldest unfinished ones are closed
    max_connections: int = 2000
    #: bytes of request body at most (a one-click POST is one short form field)
    max_body: int = 64 * 1024
    #: bytes of request line and headers at most
    max_header: int = 16 * 1024
    #: seconds from a request's first byte (a connection's opening, for its first
    #: request) to the end of its headers
    header_timeout: float = 10.0
    #: seconds from the end of the headers to the end of the body
    body_timeout: float = 10.0
    #: seconds a kept-alive connection may wait for its next request
    idle_timeout: float = 15.0
    #: worker threads running handlers (the ledger serialises writes anyway)
    threads: int = 4
    #: the listen backlog: connections the kernel queues while the server is busy
    backlog: int = 4096


# --- requests and responses -----------------------------------------------------------------


@dataclass(slots=True)
class Request:
    method: str
    #: the request target as sent (still percent-encoded), with its query
    target: str
    #: the path, percent-decoded
    path: str
    query: str
    #: header names in lower case
    headers: Mapping[str, str]
    body: bytes
    remote: str

    def form(self, max_fields: int = 100) -> dict[str, list[str]]:
        """The fields of an ``application/x-www-form-urlencoded`` body ({} for any other
        body or a malformed one)."""
        ctype = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return {}
        try:
            pairs = parse_qsl(
                self.body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=max_fields,
            )
        except (UnicodeDecodeError, ValueError):
            return {}
        out: dict[str, list[str]] = {}
        for k, v in pairs:
            out.setdefault(k, []).append(v)
        return out


@dataclass(slots=True)
class Response:
    status: int
    body: str | bytes = b""
    content_type: str = "text/plain"
    headers: list[tuple[str, str]] = field(default_factory=list)


def text(status: int, body: str) -> Response:
    return Response(status, body, "text/plain")


#: A path matcher: the route's parameters for a request target, or None (not this route).
Matcher = Callable[[str], "dict[str, str] | None"]
Handler = Callable[[Request, "dict[str, str]"], Response]


def target_path(target: str) -> str:
    """The (still encoded) path of a request target: origin form ``/p?q`` or absolute
    form ``http://host/p?q``."""
    if target.startswith("/"):
        return target.split("?", 1)[0].split("#", 1)[0]
    return urlsplit(target).path or "/"


def exact(path: str) -> Matcher:
    """A matcher for one fixed path (the query is ignored)."""

    def match(target: str) -> dict[str, str] | None:
        return {} if target_path(target) == path else None

    return match


def pattern(rx: str | re.Pattern[str]) -> Matcher:
    """A matcher for a regular expression over the (still encoded) path; its named
    groups are the parameters."""
    compiled = re.compile(rx)

    def match(target: str) -> dict[str, str] | None:
        m = compiled.fullmatch(target_path(target))
        return m.groupdict() if m else None

    return match


@dataclass(slots=True)
class _Route:
    methods: frozenset[str]
    match: Matcher
    handler: Handler


class Router:
    """A WSGI application: the first route whose matcher accepts the path answers.

    A matching route without the request's method answers 405 (with ``Allow``); no
    matching route, 404.  HEAD runs the GET handler and sends its headers only.  A
    handler that raises answers 500 and logs the error without the path.
    """

    def __init__(
        self, headers: Iterable[tuple[str, str]] = (), trusted_proxies: Sequence[Network] = ()
    ):
        self.routes: list[_Route] = []
        #: headers every response carries
        self.headers = list(headers)
        #: peers whose X-Forwarded-For / Forwarded header names the client
        self.trusted_proxies = tuple(trusted_proxies)
        #: the path of the public base URL ("/news" for https://example.org/news), which a
        #: reverse proxy may pass on unstripped; see :meth:`unprefixed`
        self.prefix = ""

    def unprefixed(self, request: Request) -> Request:
        """``request`` with the public base path taken off its target, so that the routes
        answer both ``/news/subscribe`` (a proxy that passes the path on) and
        ``/subscribe`` (one that strips it).  Only whole leading segments are taken,
        compared percent-decoded (``[signup] base_url`` may write ``/lettre d'été``
        where a browser sends ``/lettre%20d'%C3%A9t%C3%A9``)."""
        if not self.prefix:
            return request
        want = [unquote(s) for s in self.prefix.split("/")[1:]]
        if request.target.startswith("/"):
            raw = target_path(request.target)
            suffix = request.target[len(raw) :]
        else:  # absolute form
            parts = urlsplit(request.target)
            raw, suffix = parts.path or "/", f"?{parts.query}" if parts.query else ""
        got = raw.split("/")[1:]
        if [unquote(s) for s in got[: len(want)]] != want:
            return request
        rest = "/" + "/".join(got[len(want) :])
        return replace(request, target=rest + suffix, path=unquote(rest))

    def add(self, methods: Iterable[str], match: Matcher, handler: Handler) -> None:
        self.routes.append(_Route(frozenset(m.upper() for m in methods), match, handler))

    def respond(self, request: Request) -> Response:
        request = self.unprefixed(request)
        method = "GET" if request.method == "HEAD" else request.method
        allowed: set[str] = set()
        for route in self.routes:
            params = route.match(request.target)
            if params is None:
                continue
            if method not in route.methods:
                allowed |= route.methods
                continue
            return route.handler(request, params)
        if allowed:
            if "GET" in allowed:
                allowed.add("HEAD")
            return Response(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method not allowed\n",
                headers=[("Allow", ", ".join(sorted(allowed)))],
            )
        return text(HTTPStatus.NOT_FOUND, "not found\n")

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        try:
            request = _request(environ, self.trusted_proxies)
            response = self.respond(request)
        except Exception as e:  # a bug must not show a traceback to the client or the path in logs
            log.error(
                "serve: %s while answering a %s request",
                type(e).__name__,
                environ.get("REQUEST_METHOD"),
            )
            log.debug("serve: handler error", exc_info=True)
            response = text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")
        body = response.body.encode("utf-8") if isinstance(response.body, str) else response.body
        status = HTTPStatus(response.status)
        headers = [
            ("Content-Type", f"{response.content_type}; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *self.headers,
            *response.headers,
        ]
        start_response(f"{status.value} {status.phrase}", headers)
        log.info(
            "%s %s %s", environ.get("REMOTE_ADDR", "-"), environ.get("REQUEST_METHOD"), status.value
        )
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _request(environ: WSGIEnviron, trusted: Sequence[Network] = ()) -> Request:
    headers = {
        k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    length = int(environ.get("CONTENT_LENGTH") or 0)  # waitress checked it: digits only
    body = environ["wsgi.input"].read(length) if length else b""
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    return Request(
        method=environ["REQUEST_METHOD"],
        target=environ.get("REQUEST_URI") or path,
        path=path,
        query=environ.get("QUERY_STRING", ""),
        headers=headers,
        body=body,
        remote=client_address(environ.get("REMOTE_ADDR", ""), headers, trusted),
    )


# --- the client's address behind a reverse proxy -----------------------------------------

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: one forwarded-element's ``for=`` value (RFC 7239 section 4): a token or a quoted string
_FORWARDED_FOR = re.compile(r'(?i)(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)\s*(?=;|$)')


#: ``[v6]``, ``[v6]:port`` or ``v4:port`` (a bare address, v4 or v6, is taken as it is)
_HOST_PORT = re.compile(r"\[([^\]]*)\](?::\d{1,5})?|([^:\[\]]*):\d{1,5}")


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``["127.0.0.1", "10.0.0.0/8", "::1"]`` as networks; ValueError names a bad entry."""
    out: list[Network] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(entry) from None
    return tuple(out)


def _address(value: str) -> _IPAddress | None:
    """An address of a forwarding header: ``192.0.2.1``, ``2001:db8::1``, and (as RFC
    7239 writes them) ``"[2001:db8::1]:4711"`` or ``"192.0.2.1:4711"``; None otherwise."""
    value = value.strip()
    if len(value) > 1 and value[0] == value[-1] == '"':
        value = value[1:-1]
    m = _HOST_PORT.fullmatch(value)
    if m is not None:
        value = m.group(1) or m.group(2)
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: _IPAddress, trusted: Sequence[Network]) -> bool:
    return any(addr.version == net.version and addr in net for net in trusted)


def _forwarded_chain(headers: Mapping[str, str]) -> list[str] | None:
    """The hops a forwarding header lists, nearest the client first: X-Forwarded-For's
    entries, or else Forwarded's ``for=`` values (None: neither header, or a Forwarded
    element without ``for=``)."""
    xff = headers.get("x-forwarded-for")
    if xff is not None:
        return xff.split(",")
    forwarded = headers.get("forwarded")
    if forwarded is None:
        return None
    chain: list[str] = []
    for element in forwarded.split(","):
        m = _FORWARDED_FOR.search(element.strip())
        if m is None:
            return None
        chain.append(m.group(1))
    return chain


def client_address(peer: str, headers: Mapping[str, str], trusted: Sequence[Network]) -> str:
    """The client's address: ``peer`` (the socket's), unless the peer is a trusted proxy;
    then the rightmost hop of ``X-Forwarded-For`` (else of ``Forwarded: for=``) that is
    not itself a trusted proxy, as nginx's ``real_ip_recursive`` does (the leftmost when
    every hop is trusted).  A hop that is not an address (``unknown``, an obfuscated
    name, garbage) makes the whole header untrustworthy: the peer is kept.  A client
    that sends the header to us directly is not trusted, so it cannot choose its own
    address (and with it, its own rate limit)."""
    peer_addr = _address(peer) if trusted else None
    if peer_addr is None or not _trusted(peer_addr, trusted):
        return peer
    chain = _forwarded_chain(headers)
    if not chain:
        return peer
    hops = [_address(h) for h in chain]
    client: _IPAddress | None = None
    for hop in reversed(hops):
        if hop is None:
            return peer
        client = hop
        if not _trusted(hop, trusted):
            break
    return str(client) if client is not None else peer


# --- the server -----------------------------------------------------------------------------


class _Parser(HTTPRequestParser):  # type: ignore[misc]
    """waitress's parser, refusing ambiguous framing and timing each request."""

    def __init__(self, adj: Adjustments):
        super().__init__(adj)
        self.started = time.time()
        self.headers_at: float | None = None

    def received(self, data: bytes) -> int:
        n: int = super().received(data)
        if self.headers_finished and self.headers_at is None:
            self.headers_at = time.time()
        return n

    def parse_header(self, header_plus: bytes) -> None:
        head = header_plus.split(b"\r\n", 1)[-1].lower()
        te_values = re.findall(rb"(?m)^transfer-encoding[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", head)
        has_te = bool(te_values)
        has_cl = re.search(rb"(?m)^content-length[ \t]*:", head) is not None
        if re.search(rb"(?m)^(content_length|transfer_encoding)[ \t]*:", head):
            # waitress ignores a name with "_", a proxy that maps "_" to "-" would not
            raise ParsingError("Content_Length or Transfer_Encoding header")
        super().parse_header(header_plus)
        if has_te and has_cl:
            raise ParsingError("Content-Length together with Transfer-Encoding")
        if has_te and te_values != [b"chunked"]:
            # one "chunked", once (RFC 9112 section 6.1): anything else is framed
            # differently by someone along the way
            raise ParsingError("Transfer-Encoding other than one chunked")
        if has_te and self.version != "1.1":
            raise ParsingError("Transfer-Encoding on an HTTP/1.0 request")
        if self.command in ("GET", "HEAD") and (self.chunked or self.content_length > 0):
            # No route takes one, and a body no one expects is how requests get smuggled
            # past a proxy that frames it differently.
            raise ParsingError("a GET or HEAD request has no body")


class _Channel(HTTPChannel):  # type: ignore[misc]
    parser_class = _Parser


class _TcpServer(TcpWSGIServer):  # type: ignore[misc]
    channel_class = _Channel
    limits: Limits

    def handle_accept(self) -> None:
        # Accept what is waiting (waitress takes one per turn of the loop), so that a
        # burst queued in the backlog gets in at once, a health check included.
        for _ in range(256):
            if len(self._map) >= self.adj.connection_limit:
                return
            try:
                accepted = self.accept()
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    # Out of descriptors below the cap (a low hard limit): make room as
                    # at the cap, rather than spin on a listening socket that stays ready.
                    self._make_room()
                return
            if accepted is None:
                return
            conn, addr = accepted
            try:
                self.set_socket_options(conn)
            except OSError:
                conn.close()
                continue
            self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

    def readable(self) -> bool:
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            self._make_room()
        return bool(super().readable())

    def _make_room(self) -> None:
        """At the cap: close the tenth of the connections that have waited longest
        without a whole request (they are slow or idle), so new ones get in."""
        waiting = [c for c in self.active_channels.values() if not c.requests and not c.will_close]
        waiting.sort(key=lambda c: c.request.started if c.request is not None else c.last_activity)
        for channel in waiting[: max(1, len(waiting) // 10)]:
            channel.will_close = True

    def maintenance(self, now: float) -> None:
        lim = self.limits
        for channel in list(self.active_channels.values()):
            if channel.requests or channel.will_close:
                continue  # being answered, or closing already
            req = channel.request
            if req is None:
                # between requests (or none yet): the idle limit, or the header limit
                # for a connection that has not sent its first request
                first = channel.last_activity == channel.creation_time
                late = now - channel.last_activity > (
                    lim.header_timeout if first else lim.idle_timeout
                )
            elif req.headers_at is None:
                late = now - req.started > lim.header_timeout
            else:
                late = now - req.headers_at > lim.body_timeout
            if late:
                channel.will_close = True


class Server:
    """A :class:`Router` served by waitress on one address, with :class:`Limits`.

    ``serve_forever`` runs the event loop in the calling thread until ``shutdown`` (from
    another thread) or Ctrl-C; ``server_close`` then releases the socket and threads.
    """

    def __init__(
        self,
        app: Router,
        host: str,
        port: int,
        limits: Limits | None = None,
        on_close: Callable[[], None] | None = None,
    ):
        self.limits = limits or Limits()
        self.app = app
        self._on_close = on_close
        # Every connection is a descriptor, and so is everything else the process has
        # open: ask for ample room (only the soft limit moves, never past the hard one).
        _raise_descriptor_limit(max(4 * self.limits.max_connections, 65536))
        adj = Adjustments(
            host=host,
            port=port,
            threads=self.limits.threads,
            connection_limit=self.limits.max_connections,
            backlog=self.limits.backlog,
            channel_timeout=self.limits.idle_timeout,
            cleanup_interval=1,
            max_request_header_size=self.limits.max_header,
            max_request_body_size=self.limits.max_body,
            asyncore_use_poll=True,  # select() stops at descriptor 1024
            log_socket_errors=False,  # a client that goes away is not an error
            expose_tracebacks=False,
            ident="distrib",
            # waitress trusts one proxy address or "*" (then a fixed count of hops), and
            # answers a malformed header with 400: the router names the client itself
            # (client_address), so waitress drops the forwarding headers only when no
            # proxy is trusted, where they are never read anyway.
            clear_untrusted_proxy_headers=not app.trusted_proxies,
        )
        self._map: dict[int, Any] = {}
        try:
            self._server = _TcpServer(app, map=self._map, adj=adj, sockinfo=adj.listen[0])
        except BaseException:
            for dispatcher in list(self._map.values()):  # the wake-up pipe, the socket
                dispatcher.close()
            raise
        self._server.limits = self.limits  # read by the event loop, which starts later
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        # waitress's own info lines name the request path, and so the reader's token
        logging.getLogger("waitress").setLevel(logging.WARNING)
        # one line per queued request in a burst: noise, not news
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    @property
    def url(self) -> str:
        host, port = self._server.effective_host, self._server.effective_port
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=poll_interval, map=self._map, use_poll=True, count=1)
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (called from another thread) and wait for it."""
        self._stop.set()
        try:
            self._server.pull_trigger()
        except OSError:
            pass
        self._stopped.wait(10)

    def server_close(self) -> None:
        for channel in list(self._map.values()):
            if channel is not self._server and channel is not self._server.trigger:
                channel.close()
        self._server.close()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


def _raise_descriptor_limit(wanted: int) -> None:
    """Raise the soft limit of open files toward ``wanted`` (not past the hard limit):
    every connection is a descriptor, and many systems start at 1,024."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            log.warning(
                "serve: cannot raise the open-file limit to %d; fewer connections fit", target
            )
