"""The one address rule: what an email address is, and its one spelling.

Subscribers, recipients files, ``[email] recipients``, ``send --to`` and the addresses of
the config (``from``, ``reply_to`` ...) all pass through :func:`normalise_address`, so an
address the config accepts is one a subscriber list accepts, and the other way round.
Imports nothing of distrib (the config toolkit, :mod:`distrib.schema`, uses it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from email.utils import parseaddr

# RFC 5322 dot-atom for the local part, widened to non-ASCII letters (RFC 6531,
# SMTPUTF8).  Quoted local parts ("a b"@example.org) are legal but not seen in real
# subscriber lists; they are refused rather than half supported.
_ATEXT = r"[\w!#$%&'*+/=?^`{|}~-]"
_LOCAL_RE = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*$")
# One DNS label in its ASCII (A-label) form: RFC 1035 letters, digits and hyphens.
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD_RE = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


def normalise_address(text: str) -> str:
    """The one spelling of an address that the ledger keys on; ValueError if it is not one.

    The one address rule: subscribers, recipients files, ``[email] recipients`` and the
    addresses of the config (``from``, ``reply_to``...) all pass through it.  Strips
    blanks, lower-cases the whole address (the ledger compares addresses
    case-insensitively, as every real mailbox provider does), and stores an
    internationalised domain in its ASCII form (IDNA 2008, punycode), so that
    ``a@bücher.example`` and ``a@xn--bcher-kva.example`` are one subscriber and every
    mailer can send to it without SMTPUTF8.
    """
    address = unicodedata.normalize("NFC", text.strip()).lower()
    if not address:
        raise ValueError("empty")
    if any(c.isspace() for c in address) or any(c in address for c in '<>"(),;:[]\\'):
        raise ValueError("contains a space or a character not allowed in an address")
    if address.count("@") != 1:
        raise ValueError("no @" if "@" not in address else "more than one @")
    local, domain = address.split("@")
    if not local:
        raise ValueError("nothing before the @")
    if len(local.encode("utf-8")) > 64:
        raise ValueError("the part before the @ is longer than 64 bytes")
    if not _LOCAL_RE.match(local):
        raise ValueError("the part before the @ is not a valid mailbox name")
    if "=?" in local:
        # Mail clients decode "=?utf-8?b?...?=" in a To/From header as an RFC 2047
        # encoded word: the address would show as any text its author chose.
        raise ValueError("the part before the @ looks like an encoded word (=?...?=)")
    domain = _ascii_domain(domain.rstrip("."))
    address = f"{local}@{domain}"
    if len(address.encode("utf-8")) > 254:
        raise ValueError("longer than 254 bytes")
    return address


def _ascii_domain(domain: str) -> str:
    if not domain:
        raise ValueError("no domain after the @")
    if not domain.isascii():
        import idna  # a dependency of httpx; IDNA 2008 with UTS 46 mapping

        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as e:
            raise ValueError(f"the domain is not a valid internationalised name ({e})") from None
    labels = domain.split(".")
    if len(labels) < 2:
        raise ValueError("the domain has no dot")
    if not all(_LABEL_RE.match(label) for label in labels):
        raise ValueError("the domain is not a valid host name")
    if not _TLD_RE.match(labels[-1]):
        raise ValueError("the domain does not end in a top-level domain")
    return domain


def address_part(text: str) -> str:
    """The address of ``'News <news@example.org>'`` (the text itself when it has no ``<>``)."""
    m = re.search(r"<([^<>]*)>\s*$", text)
    return m.group(1) if m else text.strip()


def recipient_problems(recipients: Iterable[str]) -> list[str]:
    """One line per entry of ``[email] recipients`` that is not an address."""
    problems: list[str] = []
    for i, text in enumerate(recipients):
        _, addr = parseaddr(text)
        try:
            normalise_address(addr or text)
        except ValueError as e:
            problems.append(f"email.recipients[{i}]: {text!r} is not an email address ({e})")
    return problems
