"""The digest as an RFC 5322 message, built once per edition and personalised cheaply.

:func:`prepare_message` turns an :class:`~distrib.model.Edition` into a
:class:`PreparedMessage`: every byte that is the same for all recipients is encoded
once (headers, quoted-printable bodies) and kept as a list of chunks, with holes
where the per-recipient values go (To, Message-ID, List-Unsubscribe, and the
edition's markers, :class:`~distrib.model.Markers`, in the bodies).  ``for_recipient``
fills the holes and joins: no ``EmailMessage`` per recipient (ARCHITECTURE.md, promise 5).

The bodies are quoted-printable (RFC 2045 section 6.7) written by our own encoder so
that the bytes are safe for any SMTP server as they are:

* every line is at most 76 characters and ends in CRLF;
* no line starts with "." (encoded as ``=2E``), so the message needs no SMTP
  dot-stuffing (RFC 5321 section 4.5.2), nor with "From " (mbox mangling);
* only ASCII, so 8BITMIME / SMTPUTF8 are not needed for the bodies;
* each marker sits on its own soft-broken line, so its value (encoded per
  recipient, HTML-escaped in the HTML part) drops in without re-encoding the rest.

Header values are stripped of CR, LF and other control characters, so no title or
config value can add a header (ARCHITECTURE.md, promise 4), and of bidi overrides, so
none can reorder what the reader sees.
"""

from __future__ import annotations

import base64
import hashlib
import html as html_mod
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from ..model import Edition, Markers, Recipient
from ..unsubscribe import Tokens, preferences_maker

if TYPE_CHECKING:
    from ..config import Settings
    from ..dkim import DkimSigner

#: The recipient ``preview_bytes`` shows.
SAMPLE_RECIPIENT = Recipient("reader@example.com", "A Reader")

# --- quoted-printable -----------------------------------------------------------------

# Literal: printable ASCII but "=", plus space and tab (encoded where they end a line).
_QP: list[str] = [
    chr(b) if (33 <= b <= 126 and b != 61) or b in (9, 32) else f"={b:02X}" for b in range(256)
]
_MAX = 75  # characters before the "=" of a soft line break: lines stay <= 76

# Fast path for per-recipient values: printable ASCII only ("=" becomes "=3D").
_PLAIN_VALUE = re.compile(r"[!-~]*")


def _qp_line(line: str, *, hard_end: bool) -> list[str]:
    """One source line (no CR/LF) as encoded output lines, each without its line break.

    Every output line but the last ends with "=" (a soft break).  ``hard_end``: the
    line ends at a hard line break or the end of the body, so trailing whitespace is
    encoded (RFC 2045 rule 3: transports may strip it).
    """
    toks = [_QP[b] for b in line.encode("utf-8")]
    if hard_end and toks and toks[-1] in (" ", "\t"):
        toks[-1] = "=20" if toks[-1] == " " else "=09"
    out: list[str] = []
    cur: list[str] = []
    n = 0
    for i, t in enumerate(toks):
        if n + len(t) > _MAX:
            out.append("".join(cur) + "=")
            cur = []
            n = 0
        if n == 0:
            # A line starting with "." would need SMTP dot-stuffing; one starting with
            # "From " gets mangled to ">From " by mbox-based software.
            if t == ".":
                t = "=2E"
            elif t == "F" and toks[i + 1 : i + 5] == ["r", "o", "m", " "]:
                t = "=46"
        cur.append(t)
        n += len(t)
    out.append("".join(cur))
    return out


def qp_encode(text: str) -> str:
    """``text`` as quoted-printable with CRLF line breaks (no trailing line break added)."""
    lines = _normalise_newlines(text).split("\n")
    out: list[str] = []
    for line in lines:
        out.extend(_qp_line(line, hard_end=True))
    return "\r\n".join(out)


def _qp_value(value: str) -> bytes:
    """A per-recipient value as soft-broken QP lines, each ending in ``=\\r\\n``.

    The value sits between two soft breaks, so it decodes to exactly ``value``.
    """
    if not value:
        return b""
    if _PLAIN_VALUE.fullmatch(value):
        enc = value.replace("=", "=3D")
        pieces = []
        while len(enc) > _MAX:
            cut = _MAX
            # Never split an "=XX" escape across lines.
            if enc[cut - 1] == "=":
                cut -= 1
            elif enc[cut - 2] == "=":
                cut -= 2
            pieces.append(enc[:cut])
            enc = enc[cut:]
        pieces.append(enc)
        if not any(p[:1] == "." or p[:5] == "From " for p in pieces):
            return ("=\r\n".join(pieces) + "=\r\n").encode("ascii")
    lines = _qp_line(value, hard_end=False)
    return ("\r\n".join(lines) + "=\r\n").encode("ascii")


def _qp_pair(value: str) -> tuple[bytes, bytes]:
    """``value`` for the text part and HTML-escaped for the HTML part, both as
    :func:`_qp_value`; encoded once when escaping changes nothing (a URL of tokens)."""
    text = _qp_value(value)
    escaped = html_mod.escape(value, quote=True)
    return text, (text if escaped == value else _qp_value(escaped))


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- headers ----------------------------------------------------------------------------

# C0 controls, DEL, and the Unicode line/paragraph separators some software treats as
# line breaks: none of them may reach a header.
_CTRL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]+")
# RFC 5322 atext plus space: a display name made only of these needs no quoting.
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*")


# Bidi embeddings, overrides and isolates: in a Subject or a display name they reorder
# what the reader sees ("Invoice \u202efdp.exe" shows as "Invoice exe.pdf"); removed.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]+")


def clean_header(value: str) -> str:
    """``value`` on one line: control characters become one space, bidi overrides are
    removed, ends trimmed."""
    if value.isprintable():  # the common case; no controls, separators or bidi overrides
        return value.strip()
    return _CTRL.sub(" ", _BIDI.sub("", value)).strip()


def _encoded_words(text: str, first_room: int) -> list[str]:
    """``text`` as RFC 2047 "B" encoded-words, each at most 75 characters and split on
    character boundaries; the first fits in ``first_room`` characters."""
    words: list[str] = []
    room = max(first_room, 16)
    buf = bytearray()
    limit = (room - 12) // 4 * 3  # "=?utf-8?b?" + base64 + "?=" within room
    for ch in text:
        b = ch.encode("utf-8")
        if buf and len(buf) + len(b) > limit:
            words.append("=?utf-8?b?" + base64.b64encode(bytes(buf)).decode("ascii") + "?=")
            buf = bytearray()
            limit = (75 - 12) // 4 * 3
        buf += b
    if buf or not words:
        words.append("=?utf-8?b?" + base64.b64encode(bytes(buf)).decode("ascii") + "?=")
    return words


def _fold_words(name: str, words: Iterable[str]) -> str:
    """``Name: words`` with CRLF, folded between words so lines stay within 78 characters
    where the words allow (RFC 5322 section 2.2.3)."""
    line = f"{name}:"
    lines: list[str] = []
    first = True
    for w in words:
        if not w:
            continue  # a folded line may not be whitespace only
        if not first and len(line) + 1 + len(w) > 78:
            lines.append(line)
            line = " " + w
        else:
            line += " " + w
        first = False
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def unstructured_header(name: str, value: str) -> str:
    """``Name: value`` with CRLF, folded; RFC 2047 encoded-words if ``value`` is not ASCII."""
    value = clean_header(value)
    # A word too long to fold (RFC 5322 2.1.1: no line over 998 characters) is sent as
    # encoded-words, which can be split anywhere.
    if value.isascii() and all(len(w) < 900 for w in value.split(" ")):
        return _fold_words(name, value.split(" "))
    words = _encoded_words(value, 76 - len(name) - 2)
    return f"{name}: " + "\r\n ".join(words) + "\r\n"


def _phrase(name: str, first_room: int) -> str:
    """A display name as an RFC 5322 phrase: atoms, a quoted string, or encoded-words."""
    if _ATOM_PHRASE.fullmatch(name):
        return name
    if name.isascii():
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "\r\n ".join(_encoded_words(name, first_room))


def ascii_address(address: str) -> str:
    """``address`` with its domain in IDNA (punycode) form, for headers and the SMTP envelope.

    A non-ASCII local part is kept as it is (it needs SMTPUTF8, RFC 6531).
    """
    address = clean_header(address).replace(" ", "")
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return f"{local}@{domain}"


def format_address(name: str, address: str, header: str = "To") -> str:
    """``Name <address>`` (or the bare address) ready to follow ``header:``."""
    address = ascii_address(address)
    name = clean_header(name)
    if not name:
        return address
    room = 76 - len(header) - 2
    return f"{_phrase(name, room)} <{address}>"


def _parse_configured(value: str) -> tuple[str, str]:
    name, addr = parseaddr(clean_header(value))
    return name, addr


# --- the prepared message ---------------------------------------------------------------

# Holes in the chunk list, filled per recipient.
_H_TO, _H_MSGID, _H_UNSUB, _T_URL, _T_EMAIL, _H_URL, _H_EMAIL, _T_PREFS, _H_PREFS = range(9)


class PreparedMessage:
    """One edition's message, encoded once; :meth:`for_recipient` gives the bytes for one person."""

    #: No line of ``for_recipient``'s bytes starts with ".": they need no SMTP dot-stuffing.
    dot_safe = True

    def __init__(
        self,
        *,
        edition: Edition,
        key: bytes,
        subject: str,
        from_name: str,
        from_address: str,
        unsubscribe_url: str | None,
        unsubscribe_mailto: str | None,
        chunks: list[bytes | int],
        signer: DkimSigner | None = None,
        preferences: Callable[[str], str] | None = None,
    ):
        self.edition_id = edition.id
        self.newsletter = edition.newsletter
        self.subject = subject
        #: The bodies as rendered, with the edition's ``markers`` where the per-recipient
        #: values go (ESP hand-offs swap them for the platform's own tags).
        self.html = edition.html
        self.text = edition.text
        self.markers = edition.markers
        #: The bare From address, for the SMTP envelope (MAIL FROM) and ESP APIs.
        self.envelope_from = ascii_address(from_address)
        self.from_name = from_name
        self._key = key
        # Tokens name this newsletter; made at the edition's creation time, so a resumed
        # send writes the same bytes.
        self._token = Tokens(key).maker(edition.newsletter, issued=int(edition.created.timestamp()))
        self._url_template = unsubscribe_url
        self._mailto = unsubscribe_mailto
        self._domain = self.envelope_from.rpartition("@")[2] or "localhost"
        self._mid_seed = (
            f"{edition.newsletter}\0{edition.id}\0{edition.created.isoformat()}\0".encode()
        )
        # The fixed bytes, with an empty placeholder at each hole; ``_holes`` says which
        # per-recipient value fills each placeholder.
        self._chunks = [c if isinstance(c, bytes) else b"" for c in chunks]
        self._holes = [(i, c) for i, c in enumerate(chunks) if isinstance(c, int)]
        #: The address -> preferences-page URL function (None: no public base URL, and the
        #: link, if a template has one, leads where the unsubscribe link does).
        self._preferences = preferences
        self._has_prefs = any(c in (_T_PREFS, _H_PREFS) for _, c in self._holes)
        #: Signs each recipient's bytes (DKIM) when ``[email.dkim]`` is set.
        self.signer = signer

    # per-recipient values ------------------------------------------------------------

    def message_id(self, recipient: Recipient) -> str:
        """``<distrib.<edition>.<hash>@<from domain>>``: the same for the same edition and
        address, so a message resent after a crash carries the same id (receivers and
        their duplicate filters can tell)."""
        addr = recipient.email.strip().lower()
        digest = hashlib.blake2b(self._mid_seed + addr.encode("utf-8"), digest_size=10).hexdigest()
        return f"<distrib.{self.edition_id}.{digest}@{self._domain}>"

    def unsubscribe_url(self, recipient: Recipient) -> str:
        """The recipient's unsubscribe link: the https URL with its signed token, else the
        mailto link, else "" (no unsubscribe configured)."""
        if self._url_template:
            address = clean_header(recipient.email).strip()
            url = self._url_template
            if "{token}" in url:
                url = url.replace("{token}", self._token(address))
            if "{email}" in url:
                url = url.replace("{email}", quote(address, safe="@"))
            return url
        if self._mailto:
            return self._mailto_url()
        return ""

    def preferences_url(self, recipient: Recipient, unsubscribe_url: str | None = None) -> str:
        """The recipient's preferences-page link (a token of its own purpose); where no
        public base URL is configured, the unsubscribe link."""
        if self._preferences is not None:
            return self._preferences(clean_header(recipient.email).strip())
        return unsubscribe_url if unsubscribe_url is not None else self.unsubscribe_url(recipient)

    def _mailto_url(self) -> str:
        return f"mailto:{self._mailto}?subject=unsubscribe"

    def list_unsubscribe(self, recipient: Recipient, url: str | None = None) -> str:
        """The List-Unsubscribe value (RFC 2369), "" when none is configured."""
        items = []
        if self._url_template:
            items.append(f"<{url if url is not None else self.unsubscribe_url(recipient)}>")
        if self._mailto:
            items.append(f"<{self._mailto_url()}>")
        return ", ".join(items)

    @property
    def one_click(self) -> bool:
        """True when the message carries List-Unsubscribe-Post (RFC 8058 needs https)."""
        return self._url_template is not None and self._url_template.startswith("https://")

    def extra_headers(self, recipient: Recipient) -> dict[str, str]:
        """The list headers of this recipient's message, for HTTP ESPs that take headers."""
        out = {"Message-ID": self.message_id(recipient)}
        lu = self.list_unsubscribe(recipient)
        if lu:
            out["List-Unsubscribe"] = lu
        if self.one_click:
            out["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return out

    def html_for(self, recipient: Recipient) -> str:
        """The HTML body with this recipient's values (for HTTP ESPs)."""
        url = self.unsubscribe_url(recipient)
        return self.markers.fill(
            self.html,
            url=html_mod.escape(url, quote=True),
            email=html_mod.escape(clean_header(recipient.email), quote=True),
            prefs=html_mod.escape(self.preferences_url(recipient, url), quote=True),
        )

    def text_for(self, recipient: Recipient) -> str:
        """The text body with this recipient's values (for HTTP ESPs)."""
        url = self.unsubscribe_url(recipient)
        return self.markers.fill(
            self.text,
            url=url,
            email=clean_header(recipient.email),
            prefs=self.preferences_url(recipient, url),
        )

    # the bytes --------------------------------------------------------------------------

    def for_recipient(self, recipient: Recipient) -> bytes:
        """The complete message for ``recipient``: CRLF lines, dot-safe, ready for DATA."""
        return self.message_for(recipient)[0]

    def message_for(self, recipient: Recipient) -> tuple[bytes, str]:
        """``for_recipient``'s bytes and their Message-ID (for mailers that report it)."""
        email = clean_header(recipient.email)
        url = self.unsubscribe_url(recipient)
        message_id = self.message_id(recipient)
        values: list[bytes] = [b""] * 9
        values[_H_TO] = ("To: " + format_address(recipient.name, email) + "\r\n").encode("utf-8")
        values[_H_MSGID] = f"Message-ID: {message_id}\r\n".encode("ascii")
        lu = self.list_unsubscribe(recipient, url)
        if lu:
            values[_H_UNSUB] = _fold_words("List-Unsubscribe", lu.split(" ")).encode("utf-8")
        values[_T_URL], values[_H_URL] = _qp_pair(url)
        values[_T_EMAIL] = _qp_value(email)
        values[_H_EMAIL] = _qp_value(html_mod.escape(email, quote=True))
        if self._has_prefs:
            values[_T_PREFS], values[_H_PREFS] = _qp_pair(self.preferences_url(recipient, url))
        parts = self._chunks.copy()
        for i, hole in self._holes:
            parts[i] = values[hole]
        data = b"".join(parts)
        if self.signer is not None:
            data = self.signer.sign(data)
        return data, message_id

    def preview_bytes(self) -> bytes:
        """The message as a sample recipient would get it (``distrib preview``)."""
        return self.for_recipient(SAMPLE_RECIPIENT)


def _body_chunks(body: str, markers: Markers, holes: dict[str, int]) -> list[bytes | int]:
    """A body as QP chunks with holes where the edition's markers were (``holes``: the
    hole of each marker; and only there: text that merely looks like a marker is encoded
    like any other text)."""
    body = _normalise_newlines(body)
    pieces = markers.split(body)
    out: list[bytes | int] = []
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append(holes[piece])
            continue
        last = i == len(pieces) - 1
        lines = piece.split("\n")
        enc: list[str] = []
        for j, line in enumerate(lines):
            final = j == len(lines) - 1
            enc.append("\r\n".join(_qp_line(line, hard_end=(not final) or last)))
        text = "\r\n".join(enc)
        if not last and enc[-1]:
            # The marker's value starts on a line of its own.
            text += "=\r\n"
        if text:
            out.append(text.encode("ascii"))
    return out


def _boundary(edition: Edition) -> str:
    # "=_" never occurs in quoted-printable output (a literal "=" is always "=3D"), so
    # the boundary cannot collide with body text (RFC 2045 section 6.7, note 8).
    h = hashlib.blake2b(
        f"{edition.newsletter}\0{edition.id}\0{edition.created.isoformat()}".encode(),
        digest_size=12,
    ).hexdigest()
    return f"=_distrib_{h}"


def _list_label(name: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return label or "digest"


def prepare_message(
    settings: Settings, edition: Edition, *, key: bytes, date: datetime | None = None
) -> PreparedMessage:
    """Encode ``edition`` once; per-recipient bytes come from ``for_recipient``.

    ``key`` signs the unsubscribe tokens (see :func:`distrib.unsubscribe.signing_key`).
    ``date`` is the Date header (default: now).
    """
    email = settings.email
    from_name, from_addr = _parse_configured(email["from"])
    from_addr = ascii_address(from_addr)
    domain = from_addr.rpartition("@")[2] or "localhost"
    unsub_url = email.get("unsubscribe_url") or None
    if unsub_url:
        unsub_url = clean_header(unsub_url).replace(" ", "%20")
    mailto = email.get("unsubscribe_mailto") or None
    if mailto:
        mailto = ascii_address(_parse_configured(mailto)[1])
    subject = clean_header(edition.subject)
    try:
        site_name = clean_header(settings.site["name"])
    except (AttributeError, KeyError):
        site_name = ""

    when = (date or datetime.now(UTC)).astimezone(UTC)
    boundary = _boundary(edition)
    list_id = f"<{_list_label(edition.newsletter)}.{domain}>"
    list_name = site_name or edition.newsletter
    # Header order as mail clients write it; the holes are filled per recipient.
    head: list[str | int] = ["From: " + format_address(from_name, from_addr, "From") + "\r\n"]
    head.append(_H_TO)
    reply_to = email.get("reply_to")
    if reply_to:
        rn, ra = _parse_configured(reply_to)
        head.append("Reply-To: " + format_address(rn, ra, "Reply-To") + "\r\n")
    head.append(unstructured_header("Subject", subject))
    head.append(f"Date: {format_datetime(when)}\r\n")
    head.append(_H_MSGID)
    head.append("MIME-Version: 1.0\r\n")
    head.append("List-Id: " + _phrase(list_name, 60) + " " + list_id + "\r\n")
    head.append(_H_UNSUB)
    if unsub_url and urlsplit(unsub_url).scheme == "https":
        # RFC 8058: the one-click POST; only meaningful for an https URL.
        head.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    # Gmail Postmaster Tools groups complaint rates by these fields: the edition, the
    # newsletter, the kind of mail, and the sender (the From domain) last.
    head.append(f"Feedback-ID: {edition.id}:{_list_label(edition.newsletter)}:digest:{domain}\r\n")
    head.append("Precedence: bulk\r\n")
    head.append(f"X-Distrib-Edition: {edition.id}\r\n")
    head.append(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n')
    head.append("\r\n")

    part_head = "--{b}\r\nContent-Type: text/{sub}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    chunks: list[bytes | int] = [h if isinstance(h, int) else h.encode("utf-8") for h in head]
    chunks.append(part_head.format(b=boundary, sub="plain").encode("ascii"))
    m = edition.markers
    chunks.extend(
        _body_chunks(edition.text, m, {m.url: _T_URL, m.email: _T_EMAIL, m.prefs: _T_PREFS})
    )
    chunks.append(("\r\n" + part_head.format(b=boundary, sub="html")).encode("ascii"))
    chunks.extend(
        _body_chunks(edition.html, m, {m.url: _H_URL, m.email: _H_EMAIL, m.prefs: _H_PREFS})
    )
    chunks.append(f"\r\n--{boundary}--\r\n".encode("ascii"))

    # Merge neighbouring constant chunks: fewer pieces to join per recipient.
    merged: list[bytes | int] = []
    for c in chunks:
        if isinstance(c, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] = merged[-1] + c
        else:
            merged.append(c)

    return PreparedMessage(
        edition=edition,
        key=key,
        subject=subject,
        from_name=from_name,
        from_address=from_addr,
        unsubscribe_url=unsub_url,
        unsubscribe_mailto=mailto,
        chunks=merged,
        signer=dkim_signer(settings),
        preferences=preferences_maker(
            settings, key, edition.newsletter, int(edition.created.timestamp())
        ),
    )


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The DKIM signer ``[email.dkim]`` describes (its domain defaults to From's), or None."""
    dkim = settings.email.get("dkim") or {}
    if not (dkim.get("selector") or dkim.get("ed25519_selector")):
        return None
    from ..dkim import signer_from_settings

    opts = dict(dkim)
    if not opts.get("domain"):
        opts["domain"] = ascii_address(_parse_configured(settings.email["from"])[1]).rpartition(
            "@"
        )[2]
    return signer_from_settings(opts, settings.base_dir)
