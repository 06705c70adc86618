"""Signups under load: concurrent clients POST /subscribe (each a distinct address)
against a real `distrib serve` process on 127.0.0.1, whose confirmation emails go to a
local SMTP sink (Postfix's smtp-sink when installed, else aiosmtpd in this process).

    python benchmarks/signup.py [SIGNUPS] [CLIENTS] [--rate=R] [--max-seconds=S]
                                [--sink=aiosmtpd]

Two phases of SIGNUPS each (default 3,000) from CLIENTS connections (default 64), each
client keeping one HTTP/1.1 connection and posting one signup after another: first at
``--rate`` signups a second in all (default 300, the target; latency counted from each
signup's due time, so a server that falls behind is charged for it), then flat out (as
fast as answered).  Each phase stops when all are answered or after ``--max-seconds``
(default 60).  Then it waits (at most ``--max-seconds`` again) for serve's sender thread
to send every queued confirmation, and counts the messages at the sink by recipient:
every answered signup must have had exactly one confirmation.  It also prints serve's
CPU time per signup (its confirmation included), which the machine's load does not move.

The per-IP limit (``[signup] per_ip``, 10 an hour by default) would stop a benchmark whose
clients all come from 127.0.0.1 after ten signups, so the run sets it to a billion and says
so (it is still counted, in the ledger, for every signup).  Prints figures; exits 1 only
when a confirmation is missing, doubled or unasked.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
PER_IP = 1_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None, what: str) -> None:
    for _ in range(400):
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on 127.0.0.1:{port}")


class Sink:
    """An SMTP sink on 127.0.0.1 that can count what it received by recipient."""

    name = ""
    port = 0

    def counts(self) -> Counter[str]:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class PostfixSink(Sink):
    """smtp-sink appending every transaction to a dump file (one X-Rcpt-Args line per
    recipient)."""

    def __init__(self, folder: Path):
        self.name = "Postfix smtp-sink"
        self.port = free_port()
        folder.chmod(0o777)  # smtp-sink drops to nobody when started as root
        self.dump = folder / "sink.dump"
        cmd = [SINK]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]  # smtp-sink refuses to run as root otherwise
        cmd += ["-D", str(self.dump), f"127.0.0.1:{self.port}", "256"]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.proc, "smtp-sink")

    def counts(self) -> Counter[str]:
        found: Counter[str] = Counter()
        if not self.dump.exists():
            return found
        with self.dump.open("rb") as f:
            for line in f:
                if line.startswith(b"X-Rcpt-Args: "):
                    addr = line[13:].split(b">", 1)[0].lstrip(b"<").decode().strip().lower()
                    found[addr] += 1
        return found

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class AiosmtpdSink(Sink):
    """aiosmtpd in this process, counting recipients (without keeping the messages)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.name = "aiosmtpd"
        self.port = free_port()
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                with sink.lock:
                    for rcpt in envelope.rcpt_tos:  # type: ignore[attr-defined]
                        sink.seen[rcpt.lower()] += 1
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(self.seen)

    def stop(self) -> None:
        self.controller.stop()


def write_config(folder: Path, serve_port: int, sink_port: int) -> Path:
    path = folder / "distrib.toml"
    path.write_text(
        f"""
[site]
name = "Harbour Notes"
url = "https://news.example/"

[[sources]]
name = "blog"
type = "feed"
url = "https://news.example/feed.xml"

[email]
mailer = "smtp"
from = "Harbour Notes <news@news.example>"
unsubscribe_url = "https://news.example/unsubscribe?token={{token}}"
[email.smtp]
host = "127.0.0.1"
port = {sink_port}
security = "none"

[signup]
base_url = "http://127.0.0.1:{serve_port}"
per_ip = {PER_IP}   # all clients are 127.0.0.1: the per-IP limit is set out of the way
""",
        encoding="utf-8",
    )
    return path


def start_serve(config: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from distrib.cli import main; main()",
            "serve",
            "--quiet",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=config.parent,
    )
    wait_for_port(port, proc, "distrib serve")
    return proc


async def client(
    port: int,
    jobs: list[tuple[str, float | None]],
    stop_at: float,
    results: list[tuple[str, int, float]],
) -> None:
    """One client: its (address, due) jobs, one POST after another on one kept-alive
    HTTP/1.1 connection.  A job with a due time (``time.perf_counter()``) waits for it,
    and its latency counts from it, so a server that falls behind is charged for the
    wait.  (asyncio, one thread for all clients: 64 client threads fought over the GIL
    and their own delays showed up as the server's latency.)"""
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    for address, due in jobs:
        if time.monotonic() > stop_at:
            break
        if due is not None:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        body = urlencode({"email": address, "name": "Bench Reader", "website": ""}).encode()
        request = (
            f"POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        started = time.perf_counter() if due is None else due
        try:
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            status, keep = await _exchange(conn, request)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            status, keep = 0, False
        if not keep and conn is not None:
            conn[1].close()
            conn = None
        results.append((address, status, time.perf_counter() - started))
    if conn is not None:
        conn[1].close()


async def _exchange(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
) -> tuple[int, bool]:
    """Send one request and read its answer: (status, whether the connection stays)."""
    reader, writer = conn
    writer.write(request)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length, keep = 0, True
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "connection" and "close" in value.lower():
            keep = False
    await reader.readexactly(length)
    return status, keep


def phase(
    port: int, label: str, addresses: list[str], clients: int, rate: float | None, seconds: float
) -> list[tuple[str, int, float]]:
    """Send ``addresses`` from ``clients`` connections, as fast as answered (``rate``
    None) or at ``rate`` signups a second in all; print and return (address, status,
    latency)."""
    results: list[tuple[str, int, float]] = []
    start = time.perf_counter() + 0.2
    jobs: list[list[tuple[str, float | None]]] = [[] for _ in range(clients)]
    for i, address in enumerate(addresses):
        jobs[i % clients].append((address, None if rate is None else start + i / rate))
    stop_at = time.monotonic() + seconds

    async def everyone() -> None:
        await asyncio.gather(*(client(port, j, stop_at, results) for j in jobs))

    t0 = time.perf_counter()
    asyncio.run(everyone())
    took = time.perf_counter() - (t0 if rate is None else start)
    ok = sorted(latency for _, status, latency in results if status == 200)
    others = Counter(status for _, status, _ in results if status != 200)
    print(
        f"{label}: {len(results):,} answered in {took:.2f} s, {len(ok) / took:,.0f} signups/s "
        f"(200: {len(ok):,}; other answers: {dict(others) or 'none'}); latency "
        f"p50 {percentile(ok, 0.5) * 1000:.1f} ms, p99 {percentile(ok, 0.99) * 1000:.1f} ms, "
        f"max {(ok[-1] if ok else 0) * 1000:.1f} ms"
    )
    return results


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[i]


def wait_for_confirmations(sink: Sink, wanted: set[str], seconds: float) -> bool:
    """Wait for a confirmation to each of ``wanted``; print the count; True if each got
    exactly one and nobody else got any."""
    t1 = time.perf_counter()
    deadline = time.monotonic() + seconds
    counts = sink.counts()
    while time.monotonic() < deadline and not wanted <= set(counts):
        time.sleep(0.25)
        counts = sink.counts()
    drained = time.perf_counter() - t1
    time.sleep(1.0)  # anything sent twice would arrive now
    counts = sink.counts()
    missing = wanted - set(counts)
    twice = {a for a, n in counts.items() if n > 1}
    stray = set(counts) - wanted
    print(
        f"confirmations at the sink: {sum(counts.values()):,} for {len(wanted):,} signups, "
        f"all in {drained:.1f} s after the last answer; missing {len(missing)}, "
        f"twice or more {len(twice)}, to an address that did not sign up {len(stray)}"
    )
    return not (missing or twice or stray)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    total = int(args[0]) if args else 3000
    clients = int(args[1]) if len(args) > 1 else 64
    rate = float(opts.get("rate", 300))
    max_seconds = float(opts.get("max-seconds", 60))
    folder = Path(tempfile.mkdtemp(prefix="distrib-signup-bench-"))
    postfix = Path(SINK).exists() and opts.get("sink", "smtp-sink") == "smtp-sink"
    sink: Sink = PostfixSink(folder) if postfix else AiosmtpdSink()
    serve_port = free_port()
    try:
        serve = start_serve(write_config(folder, serve_port, sink.port), serve_port)
    except BaseException:
        sink.stop()
        raise
    try:
        load = os.getloadavg()
        print(
            f"{total:,} signups per phase from {clients} concurrent clients to `distrib serve` "
            f"on 127.0.0.1, confirmations to {sink.name}; {os.cpu_count()} CPUs, load "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; [signup] per_ip = {PER_IP:,} for the "
            "run (all clients are one IP)"
        )
        cpu_at_start = cpu_seconds(serve.pid)
        everyone = [f"reader.{i}@mail{i % 97}.example.com" for i in range(2 * total)]
        results = phase(
            serve_port, f"at {rate:,.0f}/s offered", everyone[:total], clients, rate, max_seconds
        )
        results += phase(serve_port, "flat out", everyone[total:], clients, None, max_seconds)
        wanted = {a for a, status, _ in results if status == 200}
        ok = wait_for_confirmations(sink, wanted, max_seconds)
        used = cpu_seconds(serve.pid) - cpu_at_start
        print(
            f"serve's CPU: {used:.1f} s for {len(wanted):,} signups and their confirmations, "
            f"{used / max(1, len(wanted)) * 1000:.2f} ms each (independent of the machine's load)"
        )
        if not ok:
            raise SystemExit("not every confirmation was delivered exactly once")
        print("every confirmation delivered exactly once")
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
        sink.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
