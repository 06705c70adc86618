"""Signed per-recipient unsubscribe tokens (RFC 8058 one-click links).

A token is ``base64url(address) "." base64url(HMAC-SHA256(key, address)[:16])``: the
link names the address without a lookup table, and a forged or altered token fails
verification.  The key comes from the environment variable ``[email] secret_env``
names; without one, a random key is made once and kept in the ledger, so links stay
valid across runs and `distrib serve` (which reads the same ledger) can check them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Settings
    from .ledger import Ledger

_KV_KEY = "unsubscribe:key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(key: bytes, address: str) -> str:
    address = address.strip().lower()
    mac = hmac.new(key, address.encode("utf-8"), hashlib.sha256).digest()[:16]
    return f"{_b64(address.encode('utf-8'))}.{_b64(mac)}"


def verify_token(key: bytes, token: str) -> str | None:
    """The address the token was made for, or None if it is forged or malformed."""
    try:
        addr_part, mac_part = token.split(".", 1)
        address = _unb64(addr_part).decode("utf-8")
        mac = _unb64(mac_part)
    except (ValueError, UnicodeDecodeError):
        return None
    expected = hmac.new(key, address.encode("utf-8"), hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        return None
    # Only the one spelling make_token writes: base64 decoding ignores the unused low
    # bits of the last character and skips stray characters, so without this check a
    # token edited by one character could still pass.
    return address if hmac.compare_digest(token.encode("utf-8"), make_token(key, address).encode("utf-8")) else None


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
