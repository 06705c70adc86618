"""`distrib check --domain`: what receiving mail servers will look up about the sender.

Since 2024 Gmail and Yahoo reject or spam-folder bulk mail whose From domain is not
authenticated and aligned.  This module asks DNS what a receiver asks, and says in one
line per rule what passes, what fails, and the exact record to publish:

* SPF (RFC 7208) for the envelope sender's domain: the record parsed, ``include`` and
  ``redirect`` followed within the limit of 10 DNS-querying terms (section 4.6.4), and
  whether the configured SMTP host's addresses (or the ESP's include) are covered;
* DKIM (RFC 6376 3.6): the public key at ``<selector>._domainkey.<domain>`` matches the
  configured private key;
* DMARC (RFC 7489): a record at ``_dmarc.<From domain>`` (or its organizational domain),
  and whether SPF or DKIM aligns with From, relaxed or strict as the record says;
* MX of the bounce domain (RFC 5321 5.1; a null MX, RFC 7505, loses every bounce);
* a reverse DNS name, forward-confirmed, for the SMTP host's addresses.

A look-up that times out or fails is reported as such (verdict ``error``), never a
traceback.  dnspython is imported only here, when the check runs.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings
    from .dkim import DkimSigner

PASS, FAIL, ERROR, INFO = "pass", "fail", "error", "info"

#: The SPF include each ESP documents for a custom MAIL FROM domain.
ESP_SPF_INCLUDES = {
    "ses": "amazonses.com",
    "postmark": "spf.mtasv.net",
    "mailgun": "mailgun.org",
}
#: Second-level labels under which registrations happen (co.uk, com.au ...): the
#: organizational domain is then three labels.  An approximation of the Public Suffix
#: List, good for the domains publishers use; said so in the README.
_SECOND_LEVEL = {
    "co",
    "com",
    "org",
    "net",
    "ac",
    "gov",
    "edu",
    "ltd",
    "plc",
    "me",
    "or",
    "ne",
    "go",
}
_MAX_LOOKUPS = 10  # RFC 7208 4.6.4


@dataclass(frozen=True)
class Finding:
    rule: str  # SPF, DKIM, DMARC, MX, rDNS
    verdict: str  # pass | fail | error | info
    text: str
    publish: str = ""  # the record that would fix it

    def line(self) -> str:
        out = f"{self.rule}: {self.verdict}: {self.text}"
        if self.publish:
            out += f"; publish {self.publish}"
        return out

    @property
    def failed(self) -> bool:
        return self.verdict in (FAIL, ERROR)


class LookupFailed(Exception):
    """The DNS query itself failed (time-out, SERVFAIL, refused): not an answer."""


class Dns:
    """A small facade over dnspython's resolver: answers, "no such record", or LookupFailed."""

    def __init__(self, nameservers: Iterable[str] = (), timeout: float = 5.0):
        import dns.resolver

        servers = list(nameservers)
        if servers:
            from dns.nameserver import Do53Nameserver

            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [_nameserver(s, Do53Nameserver) for s in servers]
        else:
            try:
                self.resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration as e:
                raise LookupFailed(
                    f"no DNS resolver configured ({e}); set [check] nameservers"
                ) from None
        self.resolver.timeout = timeout
        self.resolver.lifetime = timeout
        self.queries = 0

    def _query(self, name: str, rdtype: str) -> list[Any]:
        import dns.exception
        import dns.resolver

        self.queries += 1
        try:
            return list(self.resolver.resolve(name, rdtype, raise_on_no_answer=False))
        except dns.resolver.NXDOMAIN:
            return []
        except dns.resolver.NoNameservers as e:
            raise LookupFailed(f"{name} {rdtype}: every server failed (SERVFAIL or refused)") from e
        except dns.exception.Timeout as e:
            raise LookupFailed(f"{name} {rdtype}: no answer in time") from e
        except dns.exception.DNSException as e:
            raise LookupFailed(f"{name} {rdtype}: {e}") from e

    def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self._query(name, "TXT")]

    def addresses(self, name: str) -> list[str]:
        return [r.address for t in ("A", "AAAA") for r in self._query(name, t)]

    def mx(self, name: str) -> list[tuple[int, str]]:
        return sorted(
            (r.preference, r.exchange.to_text().rstrip(".")) for r in self._query(name, "MX")
        )

    def ptr(self, address: str) -> list[str]:
        import dns.reversename

        return [
            r.target.to_text().rstrip(".")
            for r in self._query(dns.reversename.from_address(address).to_text(), "PTR")
        ]


def _nameserver(text: str, cls: Any) -> Any:
    """``"9.9.9.9"``, ``"127.0.0.1:5353"`` or ``"[::1]:5353"`` as a dnspython nameserver."""
    host, port = text, 53
    m = re.fullmatch(r"\[(.+)\]:(\d+)|([^:]+):(\d+)", text)
    if m:
        host, port = (m.group(1), int(m.group(2))) if m.group(1) else (m.group(3), int(m.group(4)))
    return cls(host, port)


def quoted_txt(record: str) -> str:
    """A TXT value as DNS zone files write it: strings of at most 255 characters each
    (RFC 1035 3.3.14), which a 2048-bit DKIM key needs."""
    return " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))


def organizational_domain(domain: str) -> str:
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def aligned(a: str, b: str, mode: str) -> bool:
    """DMARC identifier alignment (RFC 7489 3.1): strict equal, relaxed same org domain."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if mode == "s":
        return a == b
    return organizational_domain(a) == organizational_domain(b)


def _tags(record: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in record.split(";"):
        key, eq, value = part.partition("=")
        if eq:
            out[key.strip().lower()] = (
                re.sub(r"\s+", "", value) if key.strip().lower() == "p" else value.strip()
            )
    return out


# --- SPF ------------------------------------------------------------------------------


@dataclass
class _Spf:
    dns: Dns
    lookups: int = 0

    def record(self, domain: str) -> str | None:
        records = [
            t
            for t in self.dns.txt(domain)
            if t.lower().startswith("v=spf1") and (len(t) == 6 or t[6] == " ")
        ]
        if len(records) > 1:
            raise _SpfError(
                f"{domain} has {len(records)} SPF records; receivers treat that as an error (keep one)"
            )
        return records[0] if records else None

    def _count(self) -> None:
        self.lookups += 1
        if self.lookups > _MAX_LOOKUPS:
            raise _SpfError(
                f"more than {_MAX_LOOKUPS} DNS look-ups (include, a, mx, ptr, exists, redirect): "
                "receivers give up (permerror); flatten some includes"
            )

    def covers(self, domain: str, ips: list[str], includes: list[str]) -> bool | None:
        """Whether ``domain``'s policy passes any of ``ips`` (or includes one of
        ``includes``); None when it hinges on terms this check cannot evaluate."""
        record = self.record(domain)
        if record is None:
            raise _SpfError(f"{domain} has no SPF record")
        unknown = False
        redirect = None
        for term in record.split()[1:]:
            qualifier = "+"
            if term[0] in "+-~?":
                qualifier, term = term[0], term[1:]
            name, _, arg = term.partition(":")
            name = name.lower()
            if "=" in name:
                key, _, value = term.partition("=")
                if key.lower() == "redirect":
                    redirect = value
                continue
            if name == "all":
                break
            hit = self._mechanism(domain, name, arg, term, ips, includes)
            if hit is None:
                unknown = True
            elif hit and qualifier == "+":
                return True
        if redirect is not None:
            self._count()
            return self.covers(redirect, ips, includes)
        return None if unknown else False

    def _mechanism(
        self, domain: str, name: str, arg: str, term: str, ips: list[str], includes: list[str]
    ) -> bool | None:
        """Whether one mechanism of ``domain``'s record matches; None when not evaluated."""
        if name == "include":
            self._count()
            if arg.lower() in includes:
                return True
            return self.covers(arg, ips, includes)
        if name in ("a", "mx"):
            self._count()
            target = arg.split("/")[0] or domain
            hosts = [target] if name == "a" else [h for _, h in self.dns.mx(target)]
            addrs = [a for h in hosts for a in self.dns.addresses(h)]
            return any(_in_net(ip, a, term) for ip in ips for a in addrs)
        if name in ("ip4", "ip6"):
            return any(_in_net(ip, arg, arg) for ip in ips)
        if name in ("ptr", "exists"):
            self._count()
            return None  # depends on the connecting IP's names: not evaluated here
        return False


class _SpfError(Exception):
    pass


def _in_net(ip: str, spec: str, term: str) -> bool:
    """``ip`` inside ``spec`` (an address or a network; ``a/24`` style CIDR from ``term``)."""
    try:
        addr = ipaddress.ip_address(ip)
        cidr = ""
        if "/" in spec:
            spec, cidr = spec.split("/", 1)
        elif "/" in term:
            cidr = term.rsplit("/", 1)[1]
        net = ipaddress.ip_network(f"{spec}/{cidr}" if cidr else spec, strict=False)
        return addr in net
    except ValueError:
        return False


# --- the checks -----------------------------------------------------------------------


@dataclass
class Sender:
    """What the receivers will see: the From domain, the envelope (bounce) domain, the
    SMTP host's addresses, the ESP, the DKIM signer."""

    from_domain: str
    envelope_domain: str
    mailer: str
    smtp_host: str = ""
    signer: DkimSigner | None = None


def sender_of(settings: Settings) -> Sender:
    from email.utils import parseaddr

    from .render.message import ascii_address, dkim_signer

    address = ascii_address(parseaddr(settings.email["from"])[1])
    domain = address.rpartition("@")[2].lower()
    mailer = settings.email.mailer
    host = ""
    if mailer == "smtp":
        host = str(settings.email.get("smtp", {}).get("host") or "localhost")
    return Sender(domain, domain, mailer, host, dkim_signer(settings))


def preflight(settings: Settings, dns: Dns | None = None) -> list[Finding]:
    """Every rule's finding for the configured sender."""
    opts = settings.data.get("check") or {}
    if dns is None:
        servers = list(opts.get("nameservers") or ())
        if not servers and os.environ.get("DISTRIB_NAMESERVERS"):
            servers = [s.strip() for s in os.environ["DISTRIB_NAMESERVERS"].split(",") if s.strip()]
        try:
            dns = Dns(servers, float(opts.get("dns_timeout") or 5.0))
        except LookupFailed as e:
            return [Finding("DNS", ERROR, str(e))]
    sender = sender_of(settings)
    findings: list[Finding] = []
    ips: list[str] = []
    host_note = ""
    if sender.smtp_host:
        ips, host_note = _host_addresses(dns, sender.smtp_host)
    for name, rule in (
        ("SPF", _spf),
        ("DKIM", _dkim),
        ("DMARC", _dmarc),
        ("MX", _mx),
        ("rDNS", _rdns),
    ):
        try:
            findings.extend(rule(dns, sender, ips, host_note, findings))
        except LookupFailed as e:
            findings.append(Finding(name, ERROR, f"look-up failed: {e}"))
    return findings


def _passed(findings: list[Finding], rule: str) -> bool:
    mine = [f for f in findings if f.rule == rule]
    return bool(mine) and all(f.verdict == PASS for f in mine)


def _host_addresses(dns: Dns, host: str) -> tuple[list[str], str]:
    """The SMTP host's public addresses, or a note on why they cannot be known here."""
    try:
        ips = [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        try:
            ips = dns.addresses(host)
        except LookupFailed:
            ips = []
        if not ips:
            return [], f"the SMTP host {host} has no address in DNS"
    public = [ip for ip in ips if not _local(ip)]
    if not public:
        return [], (
            f"the SMTP host {host} is local ({', '.join(ips)}): mail leaves through this machine's "
            "public address, which check cannot see"
        )
    return public, ""


#: Addresses that never reach a receiving server as a sender: loopback, RFC 1918, ULA,
#: link-local.  (Documentation ranges count as public, so tests can use them.)
_LOCAL_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "::/128",
    )
]


def _local(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr in net for net in _LOCAL_NETS if net.version == addr.version)


def _spf(
    dns: Dns, sender: Sender, ips: list[str], host_note: str, done: list[Finding]
) -> list[Finding]:
    domain = sender.envelope_domain
    spf = _Spf(dns)
    include = ESP_SPF_INCLUDES.get(sender.mailer)
    try:
        record = spf.record(domain)
    except _SpfError as e:
        return [Finding("SPF", FAIL, str(e))]
    if record is None:
        mech = (
            f"include:{include}"
            if include
            else (f"ip4:{ips[0]}" if ips and ":" not in ips[0] else "a mx")
        )
        return [
            Finding(
                "SPF", FAIL, f"{domain} has no SPF record", f'{domain} TXT "v=spf1 {mech} ~all"'
            )
        ]
    if include is None and not ips:
        try:
            spf.covers(domain, [], [])
        except _SpfError as e:
            return [Finding("SPF", FAIL, f"{record!r}: {e}")]
        why = host_note or f"the {sender.mailer} mailer sends nothing itself"
        return [
            Finding(
                "SPF",
                INFO,
                f"{domain} publishes {record!r}; whether it covers the sender is not known here: {why}",
            )
        ]
    try:
        covered = spf.covers(domain, ips, [include] if include else [])
    except _SpfError as e:
        return [Finding("SPF", FAIL, f"{record!r}: {e}")]
    who = (
        f"{sender.mailer} ({include})"
        if include
        else f"the SMTP host {sender.smtp_host} ({', '.join(ips)})"
    )
    if covered:
        return [
            Finding(
                "SPF", PASS, f"{domain} authorises {who} ({spf.lookups} of {_MAX_LOOKUPS} look-ups)"
            )
        ]
    if covered is None:
        return [
            Finding(
                "SPF",
                INFO,
                f"{domain}'s record {record!r} depends on ptr/exists terms; {who} may or may not pass",
            )
        ]
    add = (
        f"include:{include}"
        if include
        else (f"ip4:{ips[0]}" if ":" not in ips[0] else f"ip6:{ips[0]}")
    )
    fixed = record.replace("v=spf1", f"v=spf1 {add}", 1)
    return [
        Finding(
            "SPF",
            FAIL,
            f"{domain}'s record {record!r} does not authorise {who}",
            f'{domain} TXT "{fixed}"',
        )
    ]


def _dkim(
    dns: Dns, sender: Sender, ips: list[str], host_note: str, done: list[Finding]
) -> list[Finding]:
    signer = sender.signer
    if signer is None:
        if sender.mailer in ESP_SPF_INCLUDES:
            return [
                Finding(
                    "DKIM",
                    INFO,
                    f"{sender.mailer} signs the messages: verify {sender.from_domain} in its dashboard",
                )
            ]
        return [
            Finding(
                "DKIM",
                FAIL,
                "messages are not signed; Gmail and Yahoo require DKIM of bulk senders: "
                "`distrib dkim-keygen --out dkim.pem`, then set [email.dkim] selector and key_file",
            )
        ]
    out: list[Finding] = []
    for key in signer.keys:
        name = f"{key.selector}._domainkey.{signer.domain}"
        want = key.public_key_b64()
        records = [t for t in dns.txt(name) if "p=" in t]
        if not records:
            out.append(
                Finding(
                    "DKIM",
                    FAIL,
                    f"no key published at {name}",
                    f"{name} TXT {quoted_txt(key.record())}",
                )
            )
            continue
        tags = _tags(records[0])
        if not tags.get("p"):
            out.append(
                Finding(
                    "DKIM",
                    FAIL,
                    f"the key at {name} is revoked (empty p=)",
                    f"{name} TXT {quoted_txt(key.record())}",
                )
            )
        elif tags["p"] != want:
            out.append(
                Finding(
                    "DKIM",
                    FAIL,
                    f"the key at {name} does not match the configured private key",
                    f"{name} TXT {quoted_txt(key.record())}",
                )
            )
        else:
            out.append(
                Finding("DKIM", PASS, f"{name} publishes the key that signs ({key.algorithm})")
            )
    return out


def _dmarc(
    dns: Dns, sender: Sender, ips: list[str], host_note: str, done: list[Finding]
) -> list[Finding]:
    domain = sender.from_domain
    org = organizational_domain(domain)
    where = f"_dmarc.{domain}"
    records = [t for t in dns.txt(where) if t.lower().startswith("v=dmarc1")]
    if not records and org != domain:
        where = f"_dmarc.{org}"
        records = [t for t in dns.txt(where) if t.lower().startswith("v=dmarc1")]
    suggestion = f'_dmarc.{domain} TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"'
    if not records:
        return [
            Finding(
                "DMARC", FAIL, f"{domain} has no DMARC record; bulk senders need one", suggestion
            )
        ]
    if len(records) > 1:
        return [
            Finding(
                "DMARC",
                FAIL,
                f"{where} has {len(records)} DMARC records; receivers ignore them all (keep one)",
            )
        ]
    tags = _tags(records[0])
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return [
            Finding(
                "DMARC",
                FAIL,
                f"{where}: p= is {policy or 'missing'}; expected none, quarantine or reject",
                suggestion,
            )
        ]
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    ways = _aligned_ways(sender, done, adkim, aspf)
    signer = sender.signer
    mode = f"adkim={adkim}, aspf={aspf}"
    if not ways:
        d = signer.domain if signer else "(none)"
        return [
            Finding(
                "DMARC",
                FAIL,
                f"p={policy}, but no passing SPF or DKIM (d={d}) aligns with From {domain} ({mode}); "
                "fix the SPF and DKIM lines above",
            )
        ]
    return [
        Finding(
            "DMARC", PASS, f"{where}: p={policy}; aligned with From: {' and '.join(ways)} ({mode})"
        )
    ]


def _aligned_ways(sender: Sender, done: list[Finding], adkim: str, aspf: str) -> list[str]:
    """The passing mechanisms aligned with From: DMARC passes when there is one (RFC 7489 4.2)."""
    domain = sender.from_domain
    ways = []
    signer = sender.signer
    if signer is not None and _passed(done, "DKIM") and aligned(signer.domain, domain, adkim):
        ways.append(f"DKIM d={signer.domain}")
    elif signer is None and sender.mailer in ESP_SPF_INCLUDES:
        ways.append(f"DKIM by {sender.mailer} once {domain} is verified there")
    if (
        sender.mailer not in ESP_SPF_INCLUDES
        and _passed(done, "SPF")
        and aligned(sender.envelope_domain, domain, aspf)
    ):
        ways.append(f"SPF {sender.envelope_domain}")
    return ways


def _mx(
    dns: Dns, sender: Sender, ips: list[str], host_note: str, done: list[Finding]
) -> list[Finding]:
    domain = sender.envelope_domain
    mx = dns.mx(domain)
    if not mx:
        return [
            Finding(
                "MX",
                FAIL,
                f"{domain} has no MX: bounces to the envelope sender cannot be delivered",
                f"{domain} MX 10 mail.{domain}",
            )
        ]
    if mx == [(0, "")] or any(h in ("", ".") for _, h in mx):
        return [
            Finding(
                "MX",
                FAIL,
                f"{domain} has a null MX (RFC 7505): it accepts no mail, so every bounce is lost",
            )
        ]
    return [Finding("MX", PASS, f"{domain} receives bounces at {', '.join(h for _, h in mx)}")]


def _rdns(
    dns: Dns, sender: Sender, ips: list[str], host_note: str, done: list[Finding]
) -> list[Finding]:
    if not sender.smtp_host:
        return []
    if not ips:
        return [Finding("rDNS", INFO, host_note)] if host_note else []
    out: list[Finding] = []
    for ip in ips:
        names = dns.ptr(ip)
        if not names:
            out.append(
                Finding(
                    "rDNS",
                    FAIL,
                    f"{ip} has no reverse DNS name; ask its provider to set one (receivers distrust mail without it)",
                )
            )
            continue
        confirmed = [n for n in names if ip in dns.addresses(n)]
        if confirmed:
            out.append(Finding("rDNS", PASS, f"{ip} is {confirmed[0]}, which resolves back to it"))
        else:
            out.append(
                Finding(
                    "rDNS",
                    FAIL,
                    f"{ip} is named {names[0]}, but {names[0]} does not resolve back to {ip}",
                )
            )
    return out
