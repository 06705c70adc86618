"""A small authoritative DNS server on 127.0.0.1 for the domain preflight tests (dnslib).

Zones are a dict of (name, type) -> list of record texts in zone-file syntax.  A name
under ``timeout.test`` is never answered in time; one under ``servfail.test`` answers
SERVFAIL; anything else not in the zone is NXDOMAIN.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from dnslib import QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class ZoneResolver(BaseResolver):
    def __init__(self, records: dict[tuple[str, str], list[str]], delay: float = 3.0):
        self.records = {(n.lower().rstrip("."), t): v for (n, t), v in records.items()}
        self.delay = delay

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        if name.endswith("timeout.test"):
            time.sleep(self.delay)
            return reply
        if name.endswith("servfail.test"):
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        values = self.records.get((name, qtype))
        if values is None:
            if not any(n == name for n, _ in self.records):
                reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in values:
            reply.add_answer(*RR.fromZone(f"{name}. 60 IN {qtype} {value}"))
        return reply


@contextmanager
def dns_server(records: dict[tuple[str, str], list[str]]) -> Iterator[str]:
    """Serve ``records``; yields ``"127.0.0.1:PORT"`` for ``[check] nameservers``."""
    from tests.conftest import free_port

    port = free_port()
    server = DNSServer(
        ZoneResolver(records),
        port=port,
        address="127.0.0.1",
        logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"),
    )
    server.start_thread()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()
