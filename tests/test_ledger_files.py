"""The ledger file: never started over by accident, private, and readable read-only.

An empty or foreign file is refused (only a missing one is created); the ledger and its
-wal/-shm are 0600 and the folders distrib makes 0700; `check` warns about a ledger
others can read; in a folder this process cannot write, the reading commands work and
the writing ones say so in one line.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from distrib.errors import LedgerError
from distrib.ledger import open_ledger

from .conftest import run_distrib


def _mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _sent(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "outbox").rglob("*.eml")) if (tmp_path / "outbox").exists() else []


# --- an empty or foreign file is not a new ledger -------------------------------------


def test_an_emptied_ledger_is_refused_not_started_over(make_config, tmp_path: Path):
    cfg = make_config("[digest]\nbackfill = 3\n")
    first = run_distrib("run", "--config", str(cfg))
    assert first.returncode == 0, first.stderr
    sent = len(_sent(tmp_path))
    assert sent == 2
    ledger = tmp_path / "distrib.sqlite"
    os.truncate(ledger, 0)  # truncate -s 0 distrib.sqlite
    proc = run_distrib("run", "--config", str(cfg), "--force")
    assert proc.returncode == 2
    assert proc.stderr == (
        f"distrib: the ledger {ledger} is empty (0 bytes), so its history, subscribers and signing "
        f"key are gone; restore it from a backup (cp BACKUP {ledger}), or to start over move it "
        f"away (mv {ledger} {ledger}.old) and run again\n"
    )
    assert len(_sent(tmp_path)) == sent  # nothing re-sent
    assert ledger.stat().st_size == 0  # and the file left as it was, for the restore
    for command in ("status", "posts"):
        assert run_distrib(command, "--config", str(cfg)).returncode == 2


def test_foreign_files_are_refused_and_only_a_missing_one_is_created(tmp_path: Path):
    empty_sqlite = tmp_path / "empty.sqlite"
    sqlite3.connect(empty_sqlite).execute("PRAGMA user_version = 0").fetchone()
    sqlite3.connect(empty_sqlite).execute("VACUUM")  # a valid, empty, SQLite file
    for path, match in (
        (empty_sqlite, "is not a distrib ledger"),
        (tmp_path / "zero.sqlite", "is empty"),
        (
            tmp_path / "text.sqlite",
            r"not a distrib ledger \(not an SQLite file\); set \[ledger\] path to the ledger, or if this was it, restore",
        ),
    ):
        if path.name == "zero.sqlite":
            path.touch()
        elif path.name == "text.sqlite":
            path.write_text("subscribers were here\n")
        before = path.read_bytes()
        with pytest.raises(LedgerError, match=match):
            open_ledger(path)
        assert path.read_bytes() == before
    with open_ledger(tmp_path / "new.sqlite") as ledger:
        assert tuple(ledger.db.execute("SELECT count(*) FROM subscribers").fetchone()) == (0,)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".new")] == []


# --- modes ---------------------------------------------------------------------------


def test_ledger_files_are_private_whatever_the_umask(make_config, tmp_path: Path):
    data = tmp_path / "state" / "deep"
    cfg = make_config(f'[ledger]\npath = "{data / "distrib.sqlite"}"\n')
    code = (
        "import os, sys\n"
        "os.umask(0)\n"
        "from distrib.ledger import open_ledger\n"
        f"l = open_ledger({str(data / 'distrib.sqlite')!r})\n"
        "l.lock(); l.add_subscriber('a@example.com')\n"
        "d = %r\n"
        % str(data)
        + "modes = {n: oct(os.stat(os.path.join(d, n)).st_mode & 0o777) for n in sorted(os.listdir(d))}\n"
        + "print(modes)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    modes = eval(out)  # noqa: S307 (our own repr)
    assert modes == {
        "distrib.sqlite": "0o600",
        "distrib.sqlite-shm": "0o600",
        "distrib.sqlite-wal": "0o600",
    }
    assert _mode(data) == 0o700 and _mode(data.parent) == 0o700
    # the CLI, under the umask cron often has
    proc = subprocess.run(
        [
            "sh",
            "-c",
            f'umask 000; "{sys.executable}" -m distrib subscribers add b@example.com --config "{cfg}"',
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert _mode(data / "distrib.sqlite") == 0o600


def test_check_warns_about_a_ledger_others_can_read(make_config, tmp_path: Path):
    cfg = make_config()
    assert run_distrib("status", "--config", str(cfg)).returncode == 0
    ledger = tmp_path / "distrib.sqlite"
    proc = run_distrib("check", "--config", str(cfg))
    assert proc.returncode == 0 and "warning" not in proc.stderr
    ledger.chmod(0o644)  # restored from a backup with the default mode
    proc = run_distrib("check", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        f"distrib: warning: other users can read the ledger {ledger} (mode 0644): it holds the "
        f"signing key, sessions and subscribers; chmod 600 {ledger}\n"
    )
    ledger.chmod(0o600)
    proc = run_distrib("check", "--config", str(cfg))
    assert proc.returncode == 0 and proc.stderr == ""


# --- read-only -----------------------------------------------------------------------


def _without_privileges() -> list[str]:
    """A command prefix that runs as root without capabilities: file modes then bind
    it as they bind any user (root's CAP_DAC_OVERRIDE would write anyway)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0:
        return []
    if setpriv is None:
        pytest.skip("needs setpriv (apt-get install util-linux) to drop root's capabilities")
    probe = subprocess.run(
        [setpriv, "--bounding-set=-all", "--inh-caps=-all", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop capabilities here: {probe.stderr.decode().strip()}")
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all"]


def _run_as_user(prefix: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DISTRIB_CONFIG"}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "distrib", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("what", ["folder", "file", "folder-with-wal"])
def test_a_read_only_ledger_can_be_read_and_says_so_when_written(
    make_config, tmp_path: Path, what: str
):
    prefix = _without_privileges()
    data = tmp_path / "data"
    ledger = data / "distrib.sqlite"
    cfg = make_config(f'[digest]\nbackfill = 3\n[ledger]\npath = "{ledger}"\n')
    assert run_distrib("run", "--config", str(cfg)).returncode == 0
    holder = None
    if what == "folder-with-wal":
        # a writer elsewhere left its -wal and -shm (holding a connection keeps them)
        holder = sqlite3.connect(ledger)
        holder.execute("PRAGMA journal_mode = WAL")
        holder.execute("INSERT INTO kv VALUES ('probe', '1', 'x')")
        assert Path(f"{ledger}-wal").exists()
    out = tmp_path / "preview"
    out.mkdir()
    try:
        if what == "file":
            ledger.chmod(0o400)
        else:
            data.chmod(0o500)
        check = subprocess.run(
            [
                *prefix,
                sys.executable,
                "-c",
                f"import os; print(os.access({str(data)!r}, os.W_OK), os.access({str(ledger)!r}, os.W_OK))",
            ],
            capture_output=True,
            text=True,
        )
        if "True True" in check.stdout:
            pytest.skip("this user can write the ledger whatever its mode")
        status = _run_as_user(prefix, "status", "--config", str(cfg), cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert "edition 1 [digest]" in status.stdout and "done: 2 sent" in status.stdout
        posts = _run_as_user(prefix, "posts", "--config", str(cfg), "--json", cwd=tmp_path)
        assert posts.returncode == 0, posts.stderr
        preview = _run_as_user(
            prefix, "preview", "--config", str(cfg), "--out", str(out), cwd=tmp_path
        )
        assert preview.returncode == 0, preview.stderr
        assert list(out.glob("*.html"))
        expected = (
            f"distrib: the ledger {ledger} is read-only here (the file or its folder cannot be "
            "written); this command writes to it: run it as the user who owns the ledger, or make "
            "both writable\n"
        )
        for args in (["run"], ["send", "--force"], ["subscribers", "add", "x@example.com"]):
            proc = _run_as_user(prefix, *args, "--config", str(cfg), cwd=tmp_path)
            assert (proc.returncode, proc.stderr) == (2, expected), args
    finally:
        if holder is not None:
            holder.close()
        data.chmod(0o700)
        ledger.chmod(0o600)


def test_a_second_open_in_one_process_keeps_the_first_ones_wal(tmp_path: Path):
    # `distrib serve` keeps its ledger open; a second open in the same process (a test,
    # an embedding app) used to read the header with open()/close(), and closing any
    # descriptor of the file drops every POSIX lock the process holds on it, SQLite's
    # too: another process closing its connection then deleted the WAL under the first
    # one, whose next query failed with "disk I/O error".
    path = tmp_path / "l.sqlite"
    first = open_ledger(path)
    try:
        first.suppress("a@example.org", "unsubscribed")
        with open_ledger(path) as second:
            assert second.is_suppressed("a@example.org")
        code = (
            "import sys\nfrom distrib.ledger import open_ledger\n"
            "with open_ledger(sys.argv[1]) as led:\n"
            "    led.suppress('b@example.org', 'bounced')\n"
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env)
        assert path.with_name("l.sqlite-wal").exists()
        first.suppress("c@example.org", "complained")
        assert first.is_suppressed("b@example.org")
    finally:
        first.close()
    with open_ledger(path) as led:
        assert led.is_suppressed("c@example.org")
