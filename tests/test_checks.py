"""The static checks, run by the README's one test command (`pytest`) so CI runs them too:
`ruff check`, `ruff format --check` and `mypy --strict distrib` (configured in
pyproject.toml) must be clean.

Without ruff or mypy installed (`pip install -e '.[test]'` installs both) these skip with
that hint, except under CI=true, where a missing checker fails.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import REPO


def _tool(module: str) -> list[str]:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed; pip install -e '.[test]'")
        pytest.skip(f"{module} is not installed; pip install -e '.[test]'")
    return [sys.executable, "-m", module]


def test_ruff_check_is_clean() -> None:
    proc = subprocess.run(
        [*_tool("ruff"), "check", "--no-cache", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_ruff_format_is_clean() -> None:
    """The tree is as `ruff format` writes it: run `ruff format .` before committing."""
    proc = subprocess.run(
        [*_tool("ruff"), "format", "--check", "--no-cache", "."],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    """`mypy --strict distrib`: 0 errors ([tool.mypy] in pyproject.toml; only untyped
    third-party libraries are let through, by name)."""
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    proc = subprocess.run(
        [*_tool("mypy"), "--strict", "distrib"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert "Success: no issues found" in proc.stdout


def test_the_ci_script_runs_the_readme_test_command() -> None:
    """One command runs every check: the README's, which .ci/run runs."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "```sh\npip install -e '.[test]' && pytest\n```" in readme
    assert ci.rstrip().endswith("python3 -m pip install -q -e '.[test]' && python3 -m pytest -q")
