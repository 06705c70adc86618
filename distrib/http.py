"""The one HTTP client every source uses: polite, bounded, and cached by the ledger.

Polite: a User-Agent that names distrib and where to read about it; conditional GET
(RFC 9110 §13.1: ``If-None-Match`` / ``If-Modified-Since``) with the validators kept in
the ledger, so an unchanged feed costs one 304.  Bounded: timeouts, at most 5
redirects, and a size cap enforced while the body streams in (so a huge or endless
answer, or a compression bomb of any depth, stops at the cap: see :func:`decoded_chunks`).  Failures raise :class:`FetchError`
with one line naming the URL (credentials removed), the reason and a fix.
Contains no business logic.
"""

from __future__ import annotations

import functools
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from . import __version__
from .errors import DistribError

if TYPE_CHECKING:
    from .ledger import Ledger

T = TypeVar("T")

USER_AGENT = f"distrib/{__version__} (+https://github.com/distrib/distrib)"
MAX_REDIRECTS = 5
ERROR_BODY_BYTES = 65_536

#: Query parameters whose values never appear in a message or a log line.
_SECRET_PARAMS = (
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pass",
    "auth",
    "signature",
    "sig",
)


class FetchError(DistribError):
    """A URL could not be fetched; ``str(e)`` is one line with the URL, the reason, the fix."""

    def __init__(
        self, url: str, reason: str, hint: str = "", status: int | None = None, body: bytes = b""
    ):
        self.url = redact_url(url)
        self.reason = reason
        self.hint = hint
        self.status = status
        #: the start of an error answer's body (APIs explain themselves there)
        self.body = body
        super().__init__(f"{reason} from {self.url}" + (f"; {hint}" if hint else ""))


@dataclass(frozen=True, slots=True)
class HttpResponse:
    url: str  # the final URL, after redirects
    status: int
    headers: dict[str, str] = field(hash=False)  # lower-case names
    body: bytes
    #: True when the server answered 304 and ``body`` is the copy kept in the ledger.
    not_modified: bool = False

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case ("" when absent)."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for param in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                return value.strip().strip("\"'")
        return None

    def text(self) -> str:
        """The body decoded with the declared charset, else UTF-8 (bad bytes replaced)."""
        charset = self.charset or "utf-8"
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


def redact_url(url: str) -> str:
    """``url`` without userinfo and with secret-looking query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(any(s in k.lower() for s in _SECRET_PARAMS) for k, _ in pairs):
            query = urlencode(
                [
                    (k, "***" if any(s in k.lower() for s in _SECRET_PARAMS) else v)
                    for k, v in pairs
                ],
                safe="*/:",
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _hint_for_status(status: int) -> str:
    if status in (401, 403):
        return "check the credentials (username, password_env) and that the URL is public"
    if status in (404, 410):
        return "check the source's url"
    if status == 429:
        return "the server is rate limiting; the next run will try again"
    if status >= 500:
        return "the server failed; the next run will try again"
    return "check the source's url"


class HttpClient:
    """One httpx client for the run, shared by all sources (threads welcome)."""

    def __init__(
        self,
        ledger: Ledger | None = None,
        *,
        timeout: float = 20,
        max_bytes: int = 20_000_000,
        user_agent: str | None = None,
    ):
        self.ledger = ledger
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.user_agent = user_agent or USER_AGENT
        # The ledger's sqlite connection is shared between threads
        # (check_same_thread=False); its cache is read and written under this lock.
        self._ledger_lock = threading.Lock()
        self._client = httpx.Client(
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": self.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        conditional: bool = True,
    ) -> HttpResponse:
        """GET ``url``; on a 304 return the ledger's copy with ``not_modified=True``.

        Raise :class:`FetchError` for anything but a usable answer (4xx/5xx, timeouts,
        connection errors, too many redirects, a body over ``max_bytes``).
        """
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError:
            scheme = ""
        if scheme not in ("http", "https"):
            raise FetchError(url, "not an http(s) URL", "use a URL starting with https://")
        send = dict(headers or {})
        cached: bytes | None = None
        cache = self.ledger if conditional else None  # the ledger's HTTP cache, if used
        if cache is not None:
            with self._ledger_lock:
                etag, last_modified, cached = cache.http_cache_get(url)
            if cached is not None:
                if etag:
                    send["If-None-Match"] = etag
                if last_modified:
                    send["If-Modified-Since"] = last_modified
        started = time.monotonic()
        try:
            with self._client.stream("GET", url, headers=send, auth=auth) as r:
                final = str(r.url)
                resp_headers = {k.lower(): v for k, v in r.headers.items()}
                if r.status_code == 304:
                    if cached is None:
                        raise FetchError(
                            url,
                            "HTTP 304 to a request that was not conditional",
                            "report this server bug",
                            304,
                        )
                    return HttpResponse(final, 304, resp_headers, cached, not_modified=True)
                if r.status_code >= 400:
                    raise FetchError(
                        url,
                        f"HTTP {r.status_code}",
                        _hint_for_status(r.status_code),
                        r.status_code,
                        _read_some(r, ERROR_BODY_BYTES),
                    )
                body = self._read_body(url, r, resp_headers, started)
                status = r.status_code
        except FetchError:
            raise
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise _fetch_error(url, e, self.timeout) from None
        if cache is not None and 200 <= status < 300:
            etag = resp_headers.get("etag")
            last_modified = resp_headers.get("last-modified")
            with self._ledger_lock:
                if etag or last_modified:
                    cache.http_cache_put(url, etag, last_modified, body)
        return HttpResponse(final, status, resp_headers, body)

    def _read_body(
        self, url: str, r: httpx.Response, resp_headers: dict[str, str], started: float
    ) -> bytes:
        """The decoded body, within ``max_bytes`` and the overall deadline."""
        declared = resp_headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_big(url)
        chunks: list[bytes] = []
        size = 0
        for chunk in decoded_chunks(r):
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_big(url)
            # httpx times each read; a server that drips bytes forever is
            # stopped by this overall deadline instead.
            if time.monotonic() - started > self.timeout * 3:
                raise FetchError(
                    url, f"the answer took over {self.timeout * 3:g} s", "try again later"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_big(self, url: str) -> FetchError:
        return FetchError(
            url,
            f"an answer over {self.max_bytes // 1_000_000} MB",
            "point the source at a smaller feed (fewer items per page)",
        )

    def get_many(
        self, jobs: Iterable[str | Callable[[], T]], max_workers: int = 4
    ) -> list[HttpResponse | T | Exception]:
        """Run several fetches concurrently; results in the order given.

        A job is a URL (fetched with :meth:`get`) or a callable (a source's ``fetch``).
        Each result is the value or the exception raised, so one failure does not
        stop the others.
        """
        calls: list[Callable[[], Any]] = [
            functools.partial(self.get, job) if isinstance(job, str) else job for job in jobs
        ]
        if not calls:
            return []

        def run(call: Callable[[], Any]) -> Any:
            try:
                return call()
            except Exception as e:  # returned as a value; the caller decides
                return e

        if len(calls) == 1 or max_workers <= 1:
            return [run(c) for c in calls]
        with ThreadPoolExecutor(max_workers=min(max_workers, len(calls))) as pool:
            return list(pool.map(run, calls))


#: The only content codings distrib asks for, and the only ones it accepts: it decodes
#: them itself, a bounded piece at a time (see :func:`decoded_chunks`).
ACCEPT_ENCODING = "gzip, deflate"
_DECODABLE = ("gzip", "x-gzip", "deflate")
#: More layers than this ("gzip, gzip, gzip, ...") is no honest server.
MAX_CODINGS = 2
#: Most bytes one decompression step may produce.
_PIECE = 65_536


class EncodingRefused(httpx.DecodingError):
    """An answer in a content coding distrib did not ask for (br, zstd, ...)."""

    def __init__(self, codings: str):
        self.codings = codings
        super().__init__(f"Content-Encoding {codings}")


def decoded_chunks(r: httpx.Response) -> Iterator[bytes]:
    """The body of ``r`` decoded, in pieces of at most 64 KiB, however it was compressed.

    httpx inflates each network chunk whole (a few KB of a "gzip, gzip" bomb became GBs
    before a size cap saw them) and decodes br and zstd when their libraries are
    installed.  Here the raw bytes go through one bounded inflater per layer, so the
    caller's size cap stops a bomb after at most one piece more than the cap; a coding
    other than gzip and deflate (which ``Accept-Encoding`` does not offer) raises
    :class:`EncodingRefused` before anything is decoded.
    """
    header = r.headers.get("content-encoding", "")
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if any(c not in _DECODABLE for c in codings) or len(codings) > MAX_CODINGS:
        raise EncodingRefused(header.strip())
    chunks: Iterator[bytes] = r.iter_raw()
    for coding in reversed(codings):  # the last one listed was applied last
        chunks = _inflate(chunks, coding)
    return chunks


def _inflate(chunks: Iterator[bytes], coding: str) -> Iterator[bytes]:
    # 32 + MAX_WBITS reads gzip and zlib headers; a headerless "deflate" needs -MAX_WBITS.
    inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)
    first = True
    for raw in chunks:
        data = raw
        while data and not inflater.eof:
            try:
                out = inflater.decompress(data, _PIECE)
            except zlib.error:
                if not (first and coding == "deflate"):
                    raise httpx.DecodingError("bad compressed data") from None
                inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                out = inflater.decompress(data, _PIECE)
            first = False
            if out:
                yield out
            data = inflater.unconsumed_tail
    # Input done: what zlib still holds (at most one match), a bounded piece at a time.
    while not inflater.eof:
        out = inflater.decompress(b"", _PIECE)
        if not out:
            break
        yield out
    tail = inflater.flush()
    if tail:
        yield tail


def _read_some(r: httpx.Response, limit: int) -> bytes:
    out = b""
    try:
        for chunk in decoded_chunks(r):
            out += chunk
            if len(out) >= limit:
                break
    except httpx.HTTPError:
        pass
    return out[:limit]


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:120]


def _fetch_error(url: str, e: httpx.HTTPError | httpx.InvalidURL, timeout: float) -> FetchError:
    """The one-line FetchError of a failed GET."""
    if isinstance(e, httpx.TooManyRedirects):
        return FetchError(
            url, f"more than {MAX_REDIRECTS} redirects", "use the final URL in the config"
        )
    if isinstance(e, httpx.TimeoutException):
        return FetchError(
            url, f"no answer within {timeout:g} s", "check the url or try again later"
        )
    if isinstance(e, httpx.ConnectError):
        return FetchError(
            url, f"cannot connect ({_short(e)})", "check the host name and your network"
        )
    if isinstance(e, (httpx.InvalidURL, httpx.UnsupportedProtocol)):
        # The config only takes http(s) URLs, so this is a redirect elsewhere
        # (file:, ftp:, a malformed Location): "not a valid URL from <url>" misled.
        reason = (
            "a redirect to a URL that is not http(s)"
            if url.startswith(("http://", "https://"))
            else "not a valid http(s) URL"
        )
        return FetchError(url, reason, "check the source's url")
    if isinstance(e, EncodingRefused):
        return FetchError(
            url,
            f"an answer in Content-Encoding {e.codings[:60]!r}, which distrib did not ask for",
            f"the server must honour Accept-Encoding: {ACCEPT_ENCODING}",
        )
    if isinstance(e, httpx.DecodingError):
        return FetchError(url, "a body that cannot be decompressed", "check the server")
    return FetchError(url, f"a network error ({_short(e)})", "try again later")
