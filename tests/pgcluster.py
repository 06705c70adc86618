"""A throwaway PostgreSQL cluster for the tests: no system service, nothing left behind.

``pg_cluster`` (session-scoped) runs ``initdb`` and ``pg_ctl`` in a temporary folder,
listening on 127.0.0.1 only (its socket in the same folder), and stops it at the end of
the session.  ``initdb`` refuses to run as root, so as root the cluster belongs to the
``postgres`` user (else ``nobody``) through ``setpriv``.  ``pg_url`` gives each test a
database of its own.  Without PostgreSQL's server programs or psycopg the tests that use
them skip, saying what to install.

The fixtures are made available to every test module by tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL = "apt-get install postgresql (Debian/Ubuntu) and pip install 'psycopg[binary]'"
USER = "distrib_test"
PASSWORD = "pw-" + secrets.token_hex(8)


def _bindir() -> Path | None:
    """The folder of initdb/pg_ctl: on PATH, else Debian's versioned folder (not on PATH)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for cand in sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    ):
        if Path(cand, "initdb").exists() and Path(cand, "pg_ctl").exists():
            return Path(cand)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    user: str
    password: str
    datadir: Path

    def url(
        self, dbname: str = "postgres", *, user: str | None = None, password: str | None = None
    ) -> str:
        return f"postgresql://{user or self.user}:{password or self.password}@{self.host}:{self.port}/{dbname}"


def _as_owner(cmd: list[str], owner: pwd.struct_passwd | None) -> list[str]:
    if owner is None:
        return cmd
    return ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--clear-groups", *cmd]


class Unavailable(Exception):
    """PostgreSQL's server programs or psycopg are missing here; the message says what to install."""


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster in a temporary folder on 127.0.0.1, stopped and removed on exit.
    Raises :class:`Unavailable` when it cannot be made here (the benchmarks use it too)."""
    bindir = _bindir()
    if bindir is None:
        raise Unavailable(
            f"PostgreSQL's server programs (initdb, pg_ctl) are not installed: {INSTALL}"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable(f"psycopg is not installed: {INSTALL}") from None
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                owner = pwd.getpwnam(name)
                break
        if owner is None or not shutil.which("setpriv"):
            raise Unavailable(
                "running as root without a postgres/nobody user or setpriv to run initdb as"
            )
    top = Path(tempfile.mkdtemp(prefix="distrib-pg-"))
    datadir, pwfile, log = top / "data", top / "pw", top / "log"
    pwfile.write_text(PASSWORD + "\n")
    if owner is not None:
        os.chown(top, owner.pw_uid, owner.pw_gid)
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
    started = False
    try:
        try:
            subprocess.run(
                _as_owner(
                    [str(bindir / "initdb"), "-D", str(datadir), "-U", USER, f"--pwfile={pwfile}",
                     "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"],
                    owner,
                ),
                check=True, capture_output=True, env=env, timeout=120,
            )  # fmt: skip
            # fsync off: a test cluster need not survive a power cut.
            opts = f"-h 127.0.0.1 -p {port} -k {top} -F -c max_connections=200"
            subprocess.run(
                _as_owner([str(bindir / "pg_ctl"), "-D", str(datadir), "-o", opts, "-l", str(log), "-w", "-t", "60", "start"], owner),
                check=True, capture_output=True, env=env, timeout=90,
            )  # fmt: skip
        except subprocess.CalledProcessError as e:
            detail = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or [""]
            logtail = log.read_text(errors="replace")[-500:] if log.exists() else ""
            raise RuntimeError(
                f"could not start a throwaway PostgreSQL: {detail[0]} {logtail}"
            ) from None
        started = True
        yield Cluster("127.0.0.1", port, USER, PASSWORD, datadir)
    finally:
        if started:
            subprocess.run(
                _as_owner(
                    [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"],
                    owner,
                ),
                capture_output=True,
                env=env,
                timeout=60,
            )
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    try:
        cm = throwaway_cluster()
        cluster = cm.__enter__()
    except Unavailable as e:
        pytest.skip(str(e))
    try:
        yield cluster
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh, empty database for this test; dropped afterwards (connections and all)."""
    import psycopg

    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_cluster.url(name)
    finally:
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
