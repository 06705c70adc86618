"""One SMTP client connection over asyncio streams: greeting, EHLO, STARTTLS, AUTH, replies.

Private to the SMTP mailer.  We speak the protocol ourselves rather than through
smtplib because smtplib re-scans and re-quotes every message and cannot pipeline;
our messages are already dot-safe (see distrib.render.message) and go out as they are.
Contains no delivery policy: that is in smtp.py.

RFC 5321 (SMTP), RFC 2920 (PIPELINING), RFC 3207 (STARTTLS), RFC 4954 (AUTH),
RFC 4616 (PLAIN), RFC 3463 (enhanced status codes).
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from dataclasses import dataclass

from ..errors import DistribError

#: Enhanced status codes (RFC 3463) that mean the address does not exist and never
#: will: bad mailbox, bad system, bad syntax, mailbox moved, null MX (RFC 7505),
#: account disabled.  A full mailbox (5.2.2) or a policy block (5.7.x) is not a bounce.
HARD_BOUNCE_CODES = {"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"}
_HARD_BOUNCE_TEXT = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|mailbox not found"
    r"|unknown recipient|invalid recipient|recipient unknown|does not exist|no mailbox",
    re.IGNORECASE,
)
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


class SmtpError(DistribError):
    """The SMTP server cannot be used (connection, TLS, login, sender refused)."""


class ConnectionLost(Exception):
    """The connection dropped, timed out or the server said 421: reopen and retry."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str
    #: each line's text after the code, for EHLO's list of extensions
    lines: tuple[str, ...] = ()

    @property
    def enhanced(self) -> str:
        m = _ENHANCED.match(self.text)
        return m.group(0) if m else ""

    @property
    def hard_bounce(self) -> bool:
        """True when the reply says the address does not exist (for the suppression list)."""
        if self.code < 500:
            return False
        if self.enhanced:
            return self.enhanced in HARD_BOUNCE_CODES
        return self.code in (550, 551, 553) and bool(_HARD_BOUNCE_TEXT.search(self.text))

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


@dataclass
class Endpoint:
    host: str
    port: int
    security: str  # none | starttls | ssl
    helo: str
    timeout: float
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    ca_file: str | None = None

    @property
    def where(self) -> str:
        return f"smtp {self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        return ctx


class Connection:
    """An open, greeted (and if asked, encrypted and logged-in) SMTP session."""

    def __init__(
        self, endpoint: Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        self.endpoint = endpoint
        self.reader = reader
        self.writer = writer
        self.extensions: dict[str, str] = {}
        self._buf = bytearray()  # received, not yet parsed

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.extensions

    # --- the wire ------------------------------------------------------------------

    async def read_reply(self) -> Reply:
        """One (possibly multi-line) reply.  421 raises ConnectionLost (RFC 5321 3.8).

        Replies to a pipelined group usually arrive in one segment: one read fills the
        buffer and the following calls only parse it.
        """
        while True:
            reply = self._parse()
            if reply is not None:
                if reply.code == 421:
                    raise ConnectionLost(str(reply))
                return reply
            try:
                data = await self.reader.read(1 << 16)
            except (ConnectionError, OSError) as e:
                raise ConnectionLost(f"connection lost: {e}") from None
            if not data:
                raise ConnectionLost("the server closed the connection")
            self._buf += data
            if len(self._buf) > 1 << 20:
                raise ConnectionLost("the server sent a reply of more than 1 MB")

    def _parse(self) -> Reply | None:
        """A complete reply taken from the buffer, or None (the buffer is left as it is)."""
        buf = self._buf
        end = buf.find(b"\n")
        if end < 0:
            return None
        if buf[3:4] != b"-":  # the common case: a one-line reply
            line = bytes(buf[: end + 1])
            del buf[: end + 1]
            try:
                code = int(line[:3])
            except ValueError:
                raise ConnectionLost(f"not an SMTP reply: {line[:60]!r}") from None
            text = line[4:].strip().decode("utf-8", "replace")
            return Reply(code, text, (text,))
        pos = 0
        lines: list[bytes] = []
        while True:
            end = buf.find(b"\n", pos)
            if end < 0:
                return None
            line = bytes(buf[pos : end + 1])
            pos = end + 1
            lines.append(line)
            if line[3:4] != b"-":
                break
        del buf[:pos]
        try:
            code = int(lines[0][:3])
        except ValueError:
            raise ConnectionLost(f"not an SMTP reply: {lines[0][:60]!r}") from None
        texts = tuple(ln[4:].strip().decode("utf-8", "replace") for ln in lines)
        return Reply(code, " ".join(t for t in texts if t), texts)

    async def command(self, line: str) -> Reply:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        async with asyncio.timeout(self.endpoint.timeout):
            await self.writer.drain()
            return await self.read_reply()

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    # --- session setup ----------------------------------------------------------------

    async def ehlo(self) -> None:
        reply = await self.command(f"EHLO {self.endpoint.helo}")
        if reply.code != 250:
            # RFC 5321 4.1.4: fall back to HELO (no extensions, so no pipelining).
            reply = await self.command(f"HELO {self.endpoint.helo}")
            if reply.code != 250:
                raise SmtpError(
                    f"{self.endpoint.where} refused the greeting ({reply}); "
                    f"set [email.smtp] helo to this machine's host name"
                )
            self.extensions = {}
            return
        # The first line is the server's name; each following line one extension.
        ext: dict[str, str] = {}
        for line in reply.lines[1:]:
            name, _, params = line.partition(" ")
            if name:
                ext[name.upper()] = params
        self.extensions = ext

    async def starttls(self) -> None:
        ep = self.endpoint
        if "STARTTLS" not in self.extensions:
            raise SmtpError(
                f"{ep.where} does not offer STARTTLS; set [email.smtp] security = "
                f'"ssl" (usually port 465) or check host and port'
            )
        reply = await self.command("STARTTLS")
        if reply.code != 220:
            raise SmtpError(f"{ep.where} refused STARTTLS ({reply}); check [email.smtp] security")
        # Anything the server sent after its 220 came in the clear: never act on it
        # (the STARTTLS command-injection attack, CVE-2011-0411).
        self._buf.clear()
        try:
            async with asyncio.timeout(ep.timeout):
                await self.writer.start_tls(ep.ssl_context(), server_hostname=ep.host)
        except (ssl.SSLError, ssl.CertificateError) as e:
            raise SmtpError(_tls_message(ep, e)) from None
        # RFC 3207 4.2: forget what was said before TLS and ask again.
        await self.ehlo()

    async def login(self) -> None:
        ep = self.endpoint
        assert ep.username is not None and ep.password is not None
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        if "AUTH" not in self.extensions:
            hint = (
                ""
                if ep.security != "none"
                else "; most servers offer it only over TLS: set security"
            )
            raise SmtpError(
                f"{ep.where} does not offer AUTH{hint}, or remove [email.smtp] username"
            )
        if "PLAIN" in mechanisms or not mechanisms:
            token = base64.b64encode(
                b"\0" + ep.username.encode("utf-8") + b"\0" + ep.password.encode("utf-8")
            ).decode("ascii")
            reply = await self.command(f"AUTH PLAIN {token}")
        elif "LOGIN" in mechanisms:
            reply = await self.command("AUTH LOGIN")
            if reply.code == 334:
                reply = await self.command(base64.b64encode(ep.username.encode()).decode())
            if reply.code == 334:
                reply = await self.command(base64.b64encode(ep.password.encode()).decode())
        else:
            raise SmtpError(
                f"{ep.where} offers only AUTH {' '.join(mechanisms)}; distrib speaks PLAIN and LOGIN"
            )
        if reply.code != 235:
            env = f" in ${ep.password_env}" if ep.password_env else ""
            raise SmtpError(
                f"{ep.where} refused the login for {ep.username!r} ({reply}); "
                f"check [email.smtp] username and the password{env}"
            )

    async def close(self) -> None:
        try:
            if not self.writer.is_closing():
                self.writer.write(b"QUIT\r\n")
                async with asyncio.timeout(2):
                    await self.writer.drain()
                    await self.reader.readline()
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 - closing anyway
            pass
        self.abort()

    def abort(self) -> None:
        transport = self.writer.transport
        if transport is not None and not transport.is_closing():
            transport.abort()


def _parse_ehlo(lines: list[bytes]) -> dict[str, str]:
    ext: dict[str, str] = {}
    for raw in lines[1:]:
        words = raw[4:].strip().decode("ascii", "replace").split(" ", 1)
        if words and words[0]:
            ext[words[0].upper()] = words[1] if len(words) > 1 else ""
    return ext


def _tls_message(ep: Endpoint, e: BaseException) -> str:
    reason = getattr(e, "verify_message", None) or getattr(e, "reason", None) or str(e)
    return (
        f'{ep.where}: TLS failed ({reason}); check [email.smtp] security ("ssl" for port '
        f'465, "starttls" for 587) and port, or set ca_file for a private certificate'
    )


async def open_connection(ep: Endpoint) -> Connection:
    """Connect, read the greeting, EHLO, STARTTLS and AUTH as configured.

    Raises :class:`SmtpError` (one line naming host:port and the fix) for problems a
    retry will not fix, :class:`ConnectionLost` for a 421 greeting.
    """
    tls = ep.ssl_context() if ep.security == "ssl" else None
    try:
        async with asyncio.timeout(ep.timeout):
            reader, writer = await asyncio.open_connection(
                ep.host,
                ep.port,
                ssl=tls,
                server_hostname=ep.host if tls else None,
                limit=1 << 16,
            )
    except (ssl.SSLError, ssl.CertificateError) as e:
        raise SmtpError(_tls_message(ep, e)) from None
    except TimeoutError:
        raise SmtpError(
            f"{ep.where}: no answer within {ep.timeout:g}s; check [email.smtp] host, port "
            f"and security, and that a firewall lets the connection through"
        ) from None
    except OSError as e:
        reason = e.strerror or str(e)
        raise SmtpError(
            f"{ep.where}: cannot connect ({reason}); check [email.smtp] host and port "
            f"and that the mail server is running"
        ) from None
    conn = Connection(ep, reader, writer)
    stage = "the greeting"  # named in the timeout message: where it stalled says why
    try:
        async with asyncio.timeout(ep.timeout):
            greeting = await conn.read_reply()
        if greeting.code != 220:
            raise SmtpError(f"{ep.where} refused the session ({greeting})")
        stage = "EHLO"
        await conn.ehlo()
        if ep.security == "starttls":
            stage = "STARTTLS"
            await conn.starttls()
        if ep.username:
            stage = "the login (AUTH)"
            await conn.login()
    except TimeoutError:
        conn.abort()
        fix = {
            "the greeting": 'check [email.smtp] security ("ssl" needs port 465) and port',
            "the login (AUTH)": "check [email.smtp] username and the password"
            + (f" in ${ep.password_env}" if ep.password_env else ""),
        }.get(stage, "check [email.smtp] security and port, or try again later")
        raise SmtpError(f"{ep.where}: the server stopped answering during {stage}; {fix}") from None
    except BaseException:
        conn.abort()
        raise
    return conn
