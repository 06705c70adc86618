"""`run --force` is `run` with the cadence overridden, nothing else: the same checks
before the fetch and the same guard that lets the shares go on after a digest error."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run_distrib


def _broken_share_template(tmp_path: Path) -> str:
    folder = tmp_path / "my-templates" / "share"
    folder.mkdir(parents=True)
    (folder / "default.j2").write_text("{{ post.title }} {{ post.url\n", encoding="utf-8")
    return '[templates]\ndir = "my-templates"\n[[channels]]\nname = "o"\ntype = "outbox"\n'


@pytest.mark.parametrize("command", [("run",), ("run", "--force"), ("run", "--force", "--dry-run")])
def test_a_broken_share_template_stops_run_force_before_anything_is_sent(
    make_config, tmp_path: Path, command
):
    config = make_config(_broken_share_template(tmp_path))
    proc = run_distrib(*command, "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("distrib: channel o: ") and line.endswith("fix the template syntax")
    assert proc.stdout == ""
    assert not (tmp_path / "outbox").exists()  # no digest, no share
