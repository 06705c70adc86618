"""Files that hold subscriber data are created owner-only: .eml files, share files,
`send --report` and `subscribers export` (0600, in folders made 0700), whatever the
umask lets everyone else read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import run_distrib


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: files 0644 unless distrib says otherwise
    try:
        yield
    finally:
        os.umask(old)


CHANNEL = """
[[channels]]
name = "files"
type = "outbox"
dir = "private/shares"
backfill = 5
"""


def test_send_report_eml_and_share_files_are_private(make_config, tmp_path: Path):
    path = make_config(CHANNEL + '\n[email.outbox]\ndir = "private/mail"\n')
    proc = run_distrib(
        "send", "--config", str(path), "--report", str(tmp_path / "reports" / "send.json")
    )
    assert proc.returncode == 0, proc.stderr
    report = tmp_path / "reports" / "send.json"
    assert '"sent": 2' in report.read_text(encoding="utf-8")
    assert mode(report) == 0o600 and mode(report.parent) == 0o700
    mail = tmp_path / "private" / "mail"
    emls = list(mail.glob("*.eml"))
    assert len(emls) == 2 and all(mode(p) == 0o600 for p in emls)
    assert mode(mail) == 0o700 and mode(mail.parent) == 0o700  # every folder distrib made
    share = run_distrib("share", "--config", str(path))
    assert share.returncode == 0, share.stderr
    shares = tmp_path / "private" / "shares"
    files = list(shares.glob("*.json"))
    assert files and all(mode(p) == 0o600 for p in files)
    assert mode(shares) == 0o700


def test_report_over_an_existing_readable_file_is_narrowed(make_config, tmp_path: Path):
    path = make_config()
    report = tmp_path / "send.json"
    report.write_text("{}", encoding="utf-8")
    report.chmod(0o644)
    proc = run_distrib("send", "--config", str(path), "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    assert mode(report) == 0o600 and '"sent": 2' in report.read_text(encoding="utf-8")


def test_subscribers_export_is_private(make_config, tmp_path: Path):
    path = make_config()
    assert (
        run_distrib("subscribers", "add", "ana@example.com", "--config", str(path)).returncode == 0
    )
    out = tmp_path / "exports" / "2026" / "subs.csv"
    proc = run_distrib("subscribers", "export", str(out), "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "ana@example.com" in out.read_text(encoding="utf-8")
    assert mode(out) == 0o600 and mode(out.parent) == 0o700 and mode(out.parent.parent) == 0o700
