"""A mailer whose optional package is missing: one line with the pip command, from
`distrib check` and from a run, never a ModuleNotFoundError traceback.  The package is
hidden in the child process (``sys.modules[name] = None`` makes importing it fail)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest_cli import esp_config

HIDE = "import sys; sys.modules['boto3'] = None; sys.modules['botocore'] = None; "


def run_hidden(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = HIDE + f"sys.argv = ['distrib', *{list(args)!r}]; from distrib.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_missing_boto3_is_one_line_with_the_install_hint(make_config, tmp_path: Path) -> None:
    path = esp_config(make_config, "ses", 'region = "eu-west-1"')
    hint = "pip install 'distrib[ses]'"
    for command in (["check"], ["send"], ["run"]):
        proc = run_hidden(*command, "--config", str(path), cwd=tmp_path)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "ModuleNotFoundError" not in proc.stderr
        assert hint in proc.stdout + proc.stderr, (command, proc.stdout, proc.stderr)
        assert proc.returncode == 2, (command, proc.returncode, proc.stderr)
    # Nothing was made for an edition that could not be sent.
    import sqlite3

    ledger = tmp_path / "distrib.sqlite"
    if ledger.exists():
        db = sqlite3.connect(ledger)
        assert db.execute("SELECT count(*) FROM editions").fetchone()[0] == 0
        db.close()
