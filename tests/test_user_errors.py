"""Mistakes a new user makes, run as the user runs distrib: one clear line, the right
exit code, no traceback, and nothing fetched or sent when the mistake is theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run_distrib


@pytest.mark.parametrize(
    "args",
    [
        ("send", "--report", "a-file/report.json"),
        ("archive", "--out", "a-file/archive"),
        ("preview", "--out", "a-file/preview"),
        ("subscribers", "export", "a-file/backup.csv"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_a_usage_error_before_anything_is_sent(make_config, tmp_path: Path, args):
    config = make_config()
    (tmp_path / "a-file").write_text("a file where a folder is needed")
    proc = run_distrib(*args, "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "a-file is a file, not a folder" in proc.stderr
    assert not (tmp_path / "outbox").exists()  # nothing was sent


def test_a_report_in_a_folder_that_does_not_exist_yet_is_written(make_config, tmp_path: Path):
    config = make_config()
    proc = run_distrib("send", "--report", "reports/send.json", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"sent": 2' in (tmp_path / "reports" / "send.json").read_text()
