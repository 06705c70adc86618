"""DKIM signatures (RFC 6376) on the messages distrib builds.

``rsa-sha256`` and ``ed25519-sha256`` (RFC 8463); a message may carry both, as RFC 8463
section 5 suggests while receivers learn Ed25519.  Canonicalization is
``relaxed/simple``: header fields relaxed (RFC 6376 section 3.4.2), the body simple
(section 3.4.3), which suits distrib's bodies: quoted-printable lines that no relay
rewrites.

The per-recipient parts of a digest (To, Message-ID, the unsubscribe link in both
bodies) change the body hash and the signed headers, so every message gets its own
signature; :class:`DkimSigner` works on the finished bytes of one message and costs one
SHA-256 pass over the body and one private-key operation.

The signed headers include From, To, Subject, Date, Message-ID, List-Unsubscribe and
List-Unsubscribe-Post.  The headers in :data:`OVERSIGNED` are named once more than they
occur (section 5.4.2): a receiver then fails the signature if anyone *adds* one in
transit, so a one-click unsubscribe header cannot be forged onto the message.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

#: Header fields signed when present, in this order.
SIGNED = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
    "mime-version",
    "content-type",
)
#: Signed once more than they occur: adding one in transit breaks the signature.
OVERSIGNED = ("from", "subject", "reply-to", "list-unsubscribe", "list-unsubscribe-post")

_WSP_RUN = re.compile(rb"[ \t]+")
_FOLD = re.compile(rb"\r\n(?=[ \t])")

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")


@dataclass(frozen=True)
class DkimKey:
    """One private key and the selector its public key is published under."""

    selector: str
    algorithm: str  # one of ALGORITHMS
    private_key: RSAPrivateKey | Ed25519PrivateKey

    def public_key_b64(self) -> str:
        """The ``p=`` value of the DNS record (RFC 6376 3.6.1; RFC 8463 4)."""
        from cryptography.hazmat.primitives import serialization

        pub = self.private_key.public_key()
        if self.algorithm == "ed25519-sha256":
            raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            raw = pub.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return base64.b64encode(raw).decode("ascii")

    def record(self) -> str:
        """The TXT record to publish at ``<selector>._domainkey.<domain>``."""
        k = "ed25519" if self.algorithm == "ed25519-sha256" else "rsa"
        return f"v=DKIM1; k={k}; p={self.public_key_b64()}"

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ed25519, padding

        key = self.private_key
        # load_key pairs the algorithm with the key's type, so the type decides.
        if isinstance(key, ed25519.Ed25519PrivateKey):
            # RFC 8463 section 3: Ed25519 signs the SHA-256 hash of the data.
            return key.sign(hashlib.sha256(data).digest())
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def load_key(pem: bytes, selector: str, where: str) -> DkimKey:
    """A :class:`DkimKey` from PEM text (PKCS#8 or PKCS#1 RSA, PKCS#8 Ed25519)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"{where}: not a PEM private key without a password ({str(e).splitlines()[0]}); "
            "`distrib dkim-keygen` makes one"
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            # RFC 8301 section 3.2: verifiers must not accept keys under 1024 bits.
            raise ConfigError(
                f"{where}: an RSA key of {key.key_size} bits is refused by receivers (RFC 8301); "
                "use 2048 bits: `distrib dkim-keygen`"
            )
        return DkimKey(selector, "rsa-sha256", key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return DkimKey(selector, "ed25519-sha256", key)
    raise ConfigError(f"{where}: expected an RSA or Ed25519 private key, got {type(key).__name__}")


def _relaxed_header(name: bytes, value: bytes) -> bytes:
    """One header field in relaxed canonical form (RFC 6376 3.4.2), with CRLF."""
    value = _FOLD.sub(b"", value)
    value = _WSP_RUN.sub(b" ", value).strip(b" \t")
    return name.strip().lower() + b":" + value + b"\r\n"


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header block as (name, raw value) pairs, folded lines kept in the value."""
    out: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and out:
            name, value = out[-1]
            out[-1] = (name, value + b"\r\n" + line)
        elif line:
            name, _, value = line.partition(b":")
            out.append((name, value))
    return out


def _pieces(tag: str) -> list[str]:
    """Where a tag may be folded: base64 values anywhere, ``h=`` after a colon
    (RFC 6376 3.5 allows folding whitespace there); other tags stay whole."""
    if tag.startswith(("b=", "bh=")):
        return [tag[i : i + 64] for i in range(0, len(tag), 64)] or [tag]
    if tag.startswith("h="):
        names = tag.split(":")
        return [n + ":" for n in names[:-1]] + [names[-1]]
    return [tag]


def _fold(tags: list[str], out: str = "DKIM-Signature:", col: int | None = None) -> tuple[str, int]:
    """Append ``tags`` to ``out`` folded so lines stay within 78 characters; returns the
    text and its last line's length, so that folding can go on from there.  Folding is
    deterministic and left to right, so the header with an empty ``b=`` (what is
    signed) folds exactly like the header with the signature, up to ``b=``."""
    col = len(out) if col is None else col
    for tag in tags:
        for i, piece in enumerate(_pieces(tag)):
            sep = " " if i == 0 else ""
            if col + len(sep) + len(piece) > 78:
                out += "\r\n"
                col = 0
                sep = " "
            out += sep + piece
            col += len(sep) + len(piece)
    return out, col


class DkimSigner:
    """Signs finished messages for one domain with one or more keys."""

    def __init__(self, domain: str, keys: list[DkimKey]):
        self.domain = domain.lower().encode("idna").decode("ascii")
        self.keys = keys
        self._cache: dict[tuple[str, int, tuple[str, ...]], tuple[str, int]] = {}

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """``message`` (CRLF lines) with a DKIM-Signature header per key prepended."""
        end = message.find(b"\r\n\r\n")
        head = message if end < 0 else message[: end + 2]
        body: bytes | memoryview = b"" if end < 0 else memoryview(message)[end + 4 :]
        # Simple body canonicalization (RFC 6376 3.4.3): trailing empty lines reduced to
        # one CRLF; distrib's bodies already end so, and are hashed without a copy.
        if not (message.endswith(b"\r\n") and not message.endswith(b"\r\n\r\n")) or end < 0:
            text = bytes(body).rstrip(b"\r\n")
            body = text + b"\r\n" if text else b"\r\n"
        bh = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")

        fields = _fields(head)
        by_name: dict[bytes, list[bytes]] = {}
        for name, value in fields:
            by_name.setdefault(name.strip().lower(), []).append(value)
        names: list[str] = []
        canon: list[bytes] = []
        for h in SIGNED:
            values = by_name.get(h.encode())
            if not values:
                continue
            # Several instances: signed bottom-up (RFC 6376 5.4.2).
            for value in reversed(values):
                names.append(h)
                canon.append(_relaxed_header(h.encode(), value))
            if h in OVERSIGNED:
                names.append(h)  # no further instance: contributes nothing
        signed_head = b"".join(canon)
        t = int(time.time()) if timestamp is None else timestamp
        out: list[bytes] = []
        for key in self.keys:
            head_text, col = self._prefix(key, t, tuple(names))
            head_text, col = _fold([f"bh={bh};"], head_text, col)
            unsigned, _ = _fold(["b="], head_text, col)
            name, _, value = unsigned.encode("ascii").partition(b":")
            data = signed_head + _relaxed_header(name, value)[:-2]
            b = base64.b64encode(key.sign(data)).decode("ascii")
            out.append((_fold([f"b={b}"], head_text, col)[0] + "\r\n").encode("ascii"))
        return b"".join(out) + message

    def _prefix(self, key: DkimKey, t: int, names: tuple[str, ...]) -> tuple[str, int]:
        """The folded tags before ``bh=``: the same for every message of a second."""
        cache_key = (key.selector, t, names)
        hit = self._cache.get(cache_key)
        if hit is None:
            tags = [
                "v=1;",
                f"a={key.algorithm};",
                "c=relaxed/simple;",
                f"d={self.domain};",
                f"s={key.selector};",
                f"t={t};",
                f"h={':'.join(names)};",
            ]
            if len(self._cache) > 64:
                self._cache.clear()
            hit = self._cache[cache_key] = _fold(tags)
        return hit


def signer_from_settings(
    dkim: dict[str, object], base_dir: Path, where: str = "email.dkim"
) -> DkimSigner | None:
    """The signer ``[email.dkim]`` describes, or None when it names no selector."""
    domain = str(dkim.get("domain") or "")
    keys: list[DkimKey] = []
    for prefix in ("", "ed25519_"):
        selector = str(dkim.get(f"{prefix}selector") or "")
        if not selector:
            continue
        pem = _key_text(dkim, prefix, base_dir, where)
        key = load_key(pem, selector, f"{where}.{prefix}key_file")
        if prefix and key.algorithm != "ed25519-sha256":
            raise ConfigError(f"{where}.ed25519_key_file: expected an Ed25519 key, got RSA")
        keys.append(key)
    if not keys:
        return None
    return DkimSigner(domain, keys)


def _key_text(dkim: dict[str, object], prefix: str, base_dir: Path, where: str) -> bytes:
    file = dkim.get(f"{prefix}key_file")
    env = dkim.get(f"{prefix}key_env")
    if file:
        path = Path(str(file))
        path = path if path.is_absolute() else base_dir / path
        try:
            return path.read_bytes()
        except OSError as e:
            raise ConfigError(
                f"{where}.{prefix}key_file: cannot read {path} ({e.strerror}); "
                "`distrib dkim-keygen --out FILE` makes a key"
            ) from None
    if env:
        value = os.environ.get(str(env))
        if not value:
            raise ConfigError(
                f"{where}.{prefix}key_env: the environment variable {env} is not set; "
                f'export {env}="$(cat dkim.pem)"'
            )
        # A PEM squeezed onto one line by a secrets store keeps its breaks as "\n".
        return value.replace("\\n", "\n").encode("ascii", "replace")
    raise ConfigError(
        f"{where}: {prefix}selector is set but neither {prefix}key_file nor {prefix}key_env"
    )


def generate_key(algorithm: str = "rsa-sha256") -> bytes:
    """A new private key as PKCS#8 PEM (RSA 2048 bits, or Ed25519)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key: RSAPrivateKey | Ed25519PrivateKey
    if algorithm == "ed25519-sha256":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
