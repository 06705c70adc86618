"""The run lock is on the ledger file itself, and claims are atomic across processes.

Two configs can name one ledger through different paths (a symlink, a hard link, a
``..`` path): they must meet the same lock.  And even processes that skip the lock
entirely never claim the same row twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from distrib.errors import LockedError
from distrib.ledger import open_ledger

from .conftest import SmtpServer, free_port, run_distrib
from .test_end_to_end import smtp_config


def _alias(kind: str, real: Path, tmp_path: Path) -> Path:
    """Another path naming the file ``real``."""
    other = tmp_path / "elsewhere"
    other.mkdir(exist_ok=True)
    if kind == "symlink":
        alias = other / "linked.sqlite"
        alias.symlink_to(real)
    elif kind == "hardlink":
        alias = other / "hard.sqlite"
        os.link(real, alias)
    else:  # a path through ".." that does not look like the first one
        alias = other / ".." / real.parent.name / "." / real.name
    return alias


@pytest.mark.parametrize("kind", ["symlink", "dotdot"])
def test_two_sends_through_aliases_of_one_ledger_send_each_recipient_once(
    make_config, tmp_path: Path, kind: str
):
    from aiosmtpd.controller import Controller

    from .conftest import _Handler

    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(_Handler(server, delay=0.01), hostname="127.0.0.1", port=server.port)
    controller.start()
    try:
        addresses = [f"reader{i:03d}@example.com" for i in range(150)]
        (tmp_path / "subs.csv").write_text("email\n" + "".join(f"{a}\n" for a in addresses))
        data = tmp_path / "data"
        real = data / "distrib.sqlite"
        first_cfg = smtp_config(make_config, server, 'recipients_file = "subs.csv"')
        text = first_cfg.read_text()
        first_cfg.write_text(text + f'\n[ledger]\npath = "{real}"\n')
        assert run_distrib("status", "--config", str(first_cfg)).returncode == 0  # makes the ledger
        alias = _alias(kind, real, tmp_path)
        second_cfg = tmp_path / "second.toml"
        second_cfg.write_text(text + f'\n[ledger]\npath = "{alias}"\n')

        first = subprocess.Popen(
            [sys.executable, "-m", "distrib", "send", "--config", str(first_cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while len(server.received) < 10 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.005)
        assert first.poll() is None, "the first send finished before the second started"
        second = run_distrib("send", "--config", str(second_cfg))
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert second.returncode == 1, second.stderr
        assert "another distrib run (pid" in second.stderr and second.stderr.count("\n") == 1
        counts: dict[str, int] = {}
        for r in server.received:
            for rcpt in r.rcpt_tos:
                counts[rcpt] = counts.get(rcpt, 0) + 1
        assert set(counts) == set(addresses)
        assert {a: n for a, n in counts.items() if n > 1} == {}
        # and the alias sees the same, finished, edition
        again = run_distrib("send", "--config", str(second_cfg))
        assert again.returncode == 0, again.stderr
        assert len(server.received) == len(addresses)
    finally:
        controller.stop()


def _can_bind_mount(tmp_path: Path) -> bool:
    import shutil

    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    src, dst = tmp_path / "probe-src", tmp_path / "probe-dst"
    src.write_text("x")
    dst.write_text("")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f'mount --bind "{src}" "{dst}" && cat "{dst}"'],
        capture_output=True,
        text=True,
    )
    src.unlink()
    dst.unlink()
    return probe.returncode == 0 and probe.stdout == "x"


def test_two_sends_through_a_bind_mounted_ledger_send_each_recipient_once(
    make_config, tmp_path: Path
):
    """The ledger file bind-mounted at a second path (as a container volume is): the two
    names share no folder, so a lock file named after the path was two locks."""
    if not _can_bind_mount(tmp_path):
        pytest.skip("needs `unshare -m` and `mount --bind` (root in a private mount namespace)")
    from aiosmtpd.controller import Controller

    from .conftest import _Handler

    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(_Handler(server, delay=0.01), hostname="127.0.0.1", port=server.port)
    controller.start()
    try:
        addresses = [f"reader{i:03d}@example.com" for i in range(150)]
        (tmp_path / "subs.csv").write_text("email\n" + "".join(f"{a}\n" for a in addresses))
        real = tmp_path / "data" / "distrib.sqlite"
        first_cfg = smtp_config(make_config, server, 'recipients_file = "subs.csv"')
        text = first_cfg.read_text()
        first_cfg.write_text(text + f'\n[ledger]\npath = "{real}"\n')
        assert run_distrib("status", "--config", str(first_cfg)).returncode == 0
        alias = tmp_path / "volume" / "state.sqlite"
        alias.parent.mkdir()
        alias.write_bytes(b"")  # the mount point; inside the namespace it is the ledger
        second_cfg = tmp_path / "second.toml"
        second_cfg.write_text(text + f'\n[ledger]\npath = "{alias}"\n')
        send = f'"{sys.executable}" -m distrib send --config'
        script = (
            f'mount --bind "{real}" "{alias}" || exit 99\n'
            f'{send} "{first_cfg}" >first.out 2>first.err & A=$!\n'
            "sleep 1\n"
            f'{send} "{second_cfg}" >second.out 2>second.err; echo "second=$?"\n'
            'wait $A; echo "first=$?"\n'
        )
        proc = subprocess.run(
            ["unshare", "-m", "sh", "-c", script],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        codes = dict(line.split("=") for line in proc.stdout.split())
        assert sorted(codes.values()) == ["0", "1"], (proc.stdout, proc.stderr)
        refused = "first" if codes["first"] == "1" else "second"
        err = (tmp_path / f"{refused}.err").read_text()
        assert "another distrib run (pid" in err and err.count("\n") == 1, err
        counts: dict[str, int] = {}
        for r in server.received:
            for rcpt in r.rcpt_tos:
                counts[rcpt] = counts.get(rcpt, 0) + 1
        assert set(counts) == set(addresses)
        assert {a: n for a, n in counts.items() if n > 1} == {}
    finally:
        controller.stop()


CLAIMER = textwrap.dedent(
    """
    import json, sys, time
    from distrib.ledger import open_ledger
    from distrib.model import Outcome

    path, edition, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ledger = open_ledger(path)  # no lock(): the claims alone must hold
    addresses = [f"r{i:03d}@example.com" for i in range(300)]
    posts = [f"post-{i}" for i in range(100)]
    while not __import__("os").path.exists(go):
        time.sleep(0.001)
    won, shares = [], []
    for a in addresses:
        if ledger.claim_email(edition, a):
            won.append(a)
            time.sleep(0.0005)  # "sending"
            ledger.mark_email(edition, a, Outcome.sent("<id>"))
    for p in posts:
        if ledger.claim_share(p, "x-main", "text"):
            shares.append(p)
            ledger.mark_share(p, "x-main", Outcome.sent("1"))
    print(json.dumps([won, shares]))
    """
)


def test_processes_that_skip_the_lock_never_claim_a_row_twice(tmp_path: Path):
    """Three processes claim the same edition and shares at once, through aliases,
    none of them taking the run lock: every row is claimed by exactly one."""
    real = tmp_path / "data" / "distrib.sqlite"
    with open_ledger(real) as ledger:
        edition = ledger.create_edition("digest", ["k1"], "s", "p", "<html/>", "t")
        # Rows a process claimed and is still sending are as good as taken, too:
        # this one is left claimed by "another run" that is alive (this test process).
        assert ledger.claim_email(edition.id, "r000@example.com")
        go = tmp_path / "go"
        paths = [real, _alias("symlink", real, tmp_path), _alias("dotdot", real, tmp_path)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CLAIMER, str(p), str(edition.id), str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for p in paths
        ]
        time.sleep(0.5)  # let them all start and wait
        go.touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
    emails = [a for won, _ in results for a in won]
    shares = [p for _, won in results for p in won]
    assert len(emails) == len(set(emails)) == 299  # each once; r000 stays with its claimer
    assert "r000@example.com" not in emails
    assert len(shares) == len(set(shares)) == 100
    assert sum(1 for won, _ in results if won) >= 2, "the processes did not overlap"


def test_a_ledger_with_a_second_hard_link_is_refused(make_config, tmp_path: Path):
    """SQLite keeps the -wal by name: through a hard link each name has its own journal
    (a process there does not even see the other's rows).  Both names are refused."""
    real = tmp_path / "data" / "distrib.sqlite"
    cfg = make_config(f'[ledger]\npath = "{real}"\n')
    assert run_distrib("status", "--config", str(cfg)).returncode == 0
    alias = _alias("hardlink", real, tmp_path)
    other = tmp_path / "other.toml"
    other.write_text(cfg.read_text().replace(str(real), str(alias)))
    for config, path in ((cfg, real), (other, alias)):
        proc = run_distrib("run", "--config", str(config))
        assert proc.returncode == 2
        assert proc.stderr == (
            f"distrib: the ledger {path} has 2 hard links, and SQLite keeps its journal by name, so two "
            f"names would corrupt it; remove the other links (find / -samefile {path}) and use a "
            "symlink if you need a second name\n"
        )
    alias.unlink()
    assert run_distrib("status", "--config", str(cfg)).returncode == 0


def test_the_lock_is_released_by_kill_9_and_a_claimer_keeps_a_run_out(tmp_path: Path):
    path = tmp_path / "l.sqlite"
    open_ledger(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from distrib.ledger import open_ledger\nl = open_ledger({str(path)!r})\nl.lock()\nprint('locked', flush=True)\nimport time\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with open_ledger(path) as other:
        with pytest.raises(LockedError, match=r"another distrib run \(pid \d+"):
            other.lock()
        with pytest.raises(LockedError):  # claiming beside a run is refused too
            other.claim_email(1, "a@example.com")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with open_ledger(path) as ledger:
        ledger.lock()  # a dead holder's lock is gone: no stale lock to clean up
        edition = ledger.create_edition("digest", ["k"], "s", "p", "<html/>", "t")
    # a process claiming without the lock keeps a run from starting
    with open_ledger(path) as claimer:
        assert claimer.claim_email(edition.id, "a@example.com")
        with open_ledger(path) as run:
            with pytest.raises(LockedError):
                run.lock()
    # once it is gone, the run takes over what it left in flight (the one resend)
    with open_ledger(path) as run:
        run.lock()
        assert run.claim_email(edition.id, "a@example.com")


def test_an_older_ledger_is_migrated_and_its_claims_wait_for_the_run_lock(tmp_path: Path):
    import sqlite3

    from distrib import ledger as ledger_module

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    ledger_module.MIGRATIONS[0](db)
    ledger_module.MIGRATIONS[1](db)
    db.execute("PRAGMA user_version = 2")  # before the claims named their run
    db.execute(f"PRAGMA application_id = {ledger_module.APPLICATION_ID}")
    db.execute(
        "INSERT INTO editions (id, newsletter, subject, preheader, created, html, text) "
        "VALUES (1, 'digest', 's', 'p', '2026-11-01T00:00:00+00:00', 'h', 't')"
    )
    db.execute(
        "INSERT INTO email_deliveries (edition_id, address, status, updated) "
        "VALUES (1, 'a@example.com', 'claimed', '2026-11-01T00:00:00+00:00')"
    )
    db.close()
    with open_ledger(path) as ledger:
        assert ledger.db.execute("PRAGMA user_version").fetchone()[0] == ledger_module.VERSION
        # claimed by a run of the old schema: alive or not, only the run lock can tell
        assert not ledger.claim_email(1, "a@example.com")
        ledger.lock()
        assert ledger.claim_email(1, "a@example.com")
        assert ledger.email_counts(1)["claimed"] == 1
