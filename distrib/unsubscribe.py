"""Signed, opaque per-recipient tokens: the unsubscribe links (RFC 8058 one-click).

A token is sealed with AES-SIV (RFC 5297, deterministic authenticated encryption, from
the ``cryptography`` library)::

    base64url( 0x01 | AES-SIV(key, plaintext, associated data = 0x01 | purpose) )
    plaintext = issued (4 bytes, Unix seconds) | len(newsletter) (1 byte) | newsletter | address

so whoever sees the URL (a proxy, a log, a link scanner) learns nothing of the address
or the newsletter, the server reads both back without a lookup, and a token changed in
any bit fails authentication.  The *purpose* (unsubscribe now; confirm and preferences
for the subscriber pages) is authenticated but not stored: a token made for one purpose
does not open for another.  A token names one newsletter, so it unsubscribes from that
list only; "unsubscribe from all" is a separate choice on the confirmation page.

Tokens of the first format, ``base64url(address) "." base64url(HMAC-SHA256(key,
address)[:16])``, are in every edition sent before this one: they keep working for
unsubscribing (and for nothing else) for good, since a one-click link must work for as
long as the mail can be read; they name no newsletter and so unsubscribe from all, as
they always did.

The key comes from the environment variable ``[email] secret_env`` names; without one, a
random key is made once and kept in the ledger, so links stay valid across runs and
`distrib serve` (which reads the same ledger) can check them.  The AES-SIV key is
derived from it (HMAC-SHA512 with a fixed label), so both formats share one secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

if TYPE_CHECKING:
    from .config import Settings
    from .ledger import Ledger

_KV_KEY = "unsubscribe:key"

#: What a token is for; one purpose's token never opens another's door.
PURPOSES: dict[str, int] = {"unsubscribe": 1, "confirm": 2, "preferences": 3}
UNSUBSCRIBE = "unsubscribe"

_VERSION = 1
_SIV_LABEL = b"distrib token v1 aes-siv"
#: The longest token read: bigger input is refused before any decoding.
_MAX_TOKEN = 1024


@dataclass(frozen=True, slots=True)
class Token:
    """A verified token."""

    address: str
    #: the newsletter it names; None for a first-format token (it names none: all lists)
    newsletter: str | None
    purpose: str
    #: when it was made (Unix seconds); None for a first-format token
    issued: int | None

    @property
    def legacy(self) -> bool:
        return self.newsletter is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    """Makes and reads the tokens of one key (build once, use for many recipients)."""

    def __init__(self, key: bytes):
        self._key = key
        self._siv = AESSIV(hmac.new(key, _SIV_LABEL, hashlib.sha512).digest())

    def maker(
        self, newsletter: str, purpose: str = UNSUBSCRIBE, issued: int | None = None
    ) -> Callable[[str], str]:
        """A function of the address giving its token for ``newsletter`` and ``purpose``:
        the per-recipient cost is one AES-SIV seal and a base64 encoding."""
        name = newsletter.encode("utf-8")
        if len(name) > 255:
            raise ValueError(f"newsletter name too long for a token: {newsletter[:40]!r}…")
        head = (
            (int(time.time()) if issued is None else issued).to_bytes(4, "big")
            + bytes([len(name)])
            + name
        )
        ad = [bytes([_VERSION, PURPOSES[purpose]])]
        seal = self._siv.encrypt
        prefix = bytes([_VERSION])

        def make(address: str) -> str:
            return _b64(prefix + seal(head + address.strip().lower().encode("utf-8"), ad))

        return make

    def make(
        self, address: str, newsletter: str, purpose: str = UNSUBSCRIBE, issued: int | None = None
    ) -> str:
        return self.maker(newsletter, purpose, issued)(address)

    def read(self, token: str, purpose: str = UNSUBSCRIBE) -> Token | None:
        """The token's content if it is genuine and made for ``purpose``, else None."""
        if not token or len(token) > _MAX_TOKEN:
            return None
        if "." in token:
            if purpose != UNSUBSCRIBE:
                return None  # the first format only ever unsubscribed
            address = verify_legacy_token(self._key, token)
            return Token(address, None, purpose, None) if address is not None else None
        try:
            raw = _unb64(token)
        except (ValueError, binascii.Error):
            return None
        # Only the one spelling the maker writes: base64 decoding ignores the unused low
        # bits of the last character, so a token edited there would decode the same.
        if len(raw) < 18 or raw[0] != _VERSION or _b64(raw) != token:
            return None
        try:
            plain = self._siv.decrypt(raw[1:], [bytes([_VERSION, PURPOSES[purpose]])])
        except InvalidTag:
            return None
        n = plain[4] if len(plain) > 4 else 256
        if len(plain) < 5 + n:
            return None
        try:
            newsletter = plain[5 : 5 + n].decode("utf-8")
            address = plain[5 + n :].decode("utf-8")
        except UnicodeDecodeError:
            return None
        return Token(address, newsletter, purpose, int.from_bytes(plain[:4], "big"))


def make_token(
    key: bytes, address: str, newsletter: str, purpose: str = UNSUBSCRIBE, issued: int | None = None
) -> str:
    """One opaque token (for many, use :meth:`Tokens.maker`)."""
    return Tokens(key).make(address, newsletter, purpose, issued)


def read_token(key: bytes, token: str, purpose: str = UNSUBSCRIBE) -> Token | None:
    return Tokens(key).read(token, purpose)


def verify_token(key: bytes, token: str) -> str | None:
    """The address of a genuine unsubscribe token (either format), else None."""
    found = read_token(key, token, UNSUBSCRIBE)
    return found.address if found else None


# --- the first format (read for links in sent editions; made only by tests) ------------------


def make_legacy_token(key: bytes, address: str) -> str:
    """A first-format token: ``base64url(address).base64url(mac)``, address readable."""
    address = address.strip().lower()
    mac = hmac.new(key, address.encode("utf-8"), hashlib.sha256).digest()[:16]
    return f"{_b64(address.encode('utf-8'))}.{_b64(mac)}"


def verify_legacy_token(key: bytes, token: str) -> str | None:
    """The address a first-format token was made for, or None if forged or malformed."""
    try:
        addr_part, mac_part = token.split(".", 1)
        address = _unb64(addr_part).decode("utf-8")
        mac = _unb64(mac_part)
    except (ValueError, UnicodeDecodeError):
        return None
    expected = hmac.new(key, address.encode("utf-8"), hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        return None
    # Only the one spelling make_legacy_token writes: base64 decoding ignores the unused
    # low bits of the last character and skips stray characters, so without this check
    # a token edited by one character could still pass.
    spelled = make_legacy_token(key, address).encode("utf-8")
    return address if hmac.compare_digest(token.encode("utf-8"), spelled) else None


def public_base_url(settings: Settings) -> str:
    """The public URL `distrib serve`'s pages are under, without a trailing slash:
    ``[signup] base_url``, else the scheme and host of ``email.unsubscribe_url``; ""
    when neither is set (no page of ours can be linked to)."""
    from urllib.parse import urlsplit

    signup = settings.data.get("signup") or {}
    configured = signup.get("base_url") if hasattr(signup, "get") else None
    if configured:
        return str(configured).rstrip("/")
    parts = urlsplit(settings.email.get("unsubscribe_url") or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def preferences_maker(
    settings: Settings, key: bytes, newsletter: str, issued: int | None = None
) -> Callable[[str], str] | None:
    """A function of the address giving its preferences-page URL, or None when no public
    base URL is configured."""
    base = public_base_url(settings)
    if not base:
        return None
    token = Tokens(key).maker(newsletter, "preferences", issued)
    prefix = f"{base}/preferences?token="

    def url(address: str) -> str:
        return prefix + token(address)

    return url


def signing_key(settings: Settings, ledger: Ledger | None) -> bytes:
    """The key from ``[email] secret_env``, else the ledger's own (made on first use)."""
    secret = settings.secret(settings.email, "secret_env", where="email")
    if secret:
        return secret.encode("utf-8")
    if ledger is None:
        # Previews without a ledger: links look real but do not verify.
        return b"distrib-preview-key"
    stored = ledger.kv_get(_KV_KEY)
    if not stored:
        # made once: a process making it at the same time (another replica) keeps the first
        stored = ledger.kv_put_new(_KV_KEY, secrets.token_hex(32))
    return bytes.fromhex(stored)
