"""An unsubscribe answered 200 is on disk: the ledger's WAL is synced before the answer.

With ``synchronous = NORMAL`` a commit reaches the WAL file but is synced only at the
next checkpoint, so a power loss after the 200 could lose the unsubscribe.  The test
watches the real `distrib serve` process with strace: between the request and the
answer there must be an fsync/fdatasync of the ledger's ``-wal`` file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from distrib import subscribers as subs
from distrib.ledger import open_ledger
from distrib.unsubscribe import make_legacy_token
from tests.serve.conftest import start_serve


def _strace_works() -> str | None:
    if not shutil.which("strace"):
        return "needs strace (apt-get install strace)"
    probe = subprocess.run(["strace", "-f", "-o", "/dev/null", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"strace cannot trace here: {probe.stderr.decode(errors='replace').strip()[:200]}"
    return None


def _syncs_before_answer(trace: str, marker: str) -> tuple[list[str], bool]:
    """The sync calls on a -wal file between the request's read (the line holding
    ``marker``) and the first send after it; and whether such a send was seen."""
    lines = trace.splitlines()
    start = next((i for i, line in enumerate(lines) if marker in line and "recv" in line), None)
    assert start is not None, "the request was not seen in the trace"
    syncs: list[str] = []
    for line in lines[start + 1 :]:
        if re.search(r"\b(fsync|fdatasync)\(\d+<[^>]*-wal>", line):
            syncs.append(line)
        if (
            re.search(r"\b(sendto|send|write|sendmsg)\(\d+<(?:TCPv6|TCP|socket):", line)
            and "200 OK" in line
        ):
            return syncs, True
    return syncs, False


@pytest.mark.slow
def test_unsubscribe_is_synced_to_disk_before_the_200(tmp_path: Path) -> None:
    why = _strace_works()
    if why:
        pytest.skip(why)
    trace_path = tmp_path / "serve.strace"
    server = start_serve(tmp_path)
    tracer = subprocess.Popen(
        [
            "strace",
            "-f",
            "-qq",
            "-y",
            "-s",
            "4096",
            "-o",
            str(trace_path),
            "-p",
            str(server.proc.pid),
            "-e",
            "trace=fsync,fdatasync,recvfrom,recvmsg,read,sendto,sendmsg,write",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while "attach-probe" not in (
            trace_path.read_text(errors="replace") if trace_path.exists() else ""
        ):
            assert time.monotonic() < deadline, "strace did not attach"
            httpx.get(f"{server.url}/healthz", headers={"X-Marker": "attach-probe"}, timeout=10)
            time.sleep(0.2)
        # A first write (a fresh WAL file gets its header synced whatever the level),
        # then the one watched.
        first = make_legacy_token(server.key, "reader1@example.org")
        assert (
            httpx.post(f"{server.url}/letters/unsubscribe?token={first}", timeout=30).status_code
            == 200
        )
        token = make_legacy_token(server.key, "reader0@example.org")
        r = httpx.post(
            f"{server.url}/letters/unsubscribe?token={token}",
            content=b"List-Unsubscribe=One-Click",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Marker": "durability-probe",
            },
            timeout=30,
        )
        assert r.status_code == 200
        time.sleep(0.5)  # strace writes its lines as the calls return
    finally:
        tracer.terminate()  # detaches; the server goes on
        tracer.wait(15)
        server.stop()
    syncs, answered = _syncs_before_answer(
        trace_path.read_text(errors="replace"), "durability-probe"
    )
    assert answered, "the answer was not seen in the trace"
    assert syncs, "the unsubscribe was answered 200 before the ledger's WAL was synced"
    with open_ledger(server.ledger_path) as led:
        assert led.is_suppressed("reader0@example.org")


def test_cli_suppressions_and_removals_are_synced(tmp_path: Path) -> None:
    """The same for the CLI's writes (unsubscribe, subscribers remove): seen through
    SQLite's statement trace, which shows the level each commit ran at."""
    led = open_ledger(tmp_path / "distrib.sqlite")
    try:
        subs.add(led, "a@example.org")
        subs.add(led, "b@example.org")
        seen: list[str] = []
        led.db.raw.set_trace_callback(seen.append)
        subs.remove(led, "a@example.org")
        subs.unsubscribe(led, "c@example.org", "fbl", "complained")
        led.opt_out("b@example.org", "weekly", "one-click")
        led.db.raw.set_trace_callback(None)
        text = "\n".join(seen)
        writes = [
            s
            for s in seen
            if s.lstrip()
            .upper()
            .startswith(
                ("UPDATE SUBSCRIBERS", "INSERT INTO SUBSCRIBERS", "INSERT INTO NEWSLETTER_OPTOUTS")
            )
        ]
        assert len(writes) == 3, text
        for w in writes:
            before = seen[: seen.index(w)]
            levels = [s for s in before if "synchronous" in s.lower()]
            assert levels and "FULL" in levels[-1].upper(), (w, levels)
        assert "synchronous = NORMAL" in seen[-1]  # back to the everyday level
    finally:
        led.close()


def test_an_imported_suppression_list_is_synced(tmp_path: Path) -> None:
    csv = tmp_path / "export.csv"
    csv.write_text(
        "email,status\nkeep@example.org,active\ngone@example.org,unsubscribed\n", encoding="utf-8"
    )
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        seen: list[str] = []
        led.db.raw.set_trace_callback(seen.append)
        subs.import_csv(led, csv)
        led.db.raw.set_trace_callback(None)
        commits = [i for i, s in enumerate(seen) if s.strip().upper() == "COMMIT"]
        assert commits
        for i in commits:
            levels = [s for s in seen[:i] if "synchronous" in s.lower()]
            assert levels and "FULL" in levels[-1].upper(), seen
        assert led.is_suppressed("gone@example.org")
